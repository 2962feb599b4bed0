"""File formats: one module per family, readers and writers side by side (keypoints, landmarks,
volumes, calibrations, transforms, OpenSim .mot); see ``docs/formats-*.md``."""
