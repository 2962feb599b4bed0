import sys
sys.path.insert(0, "benchmarks")
import numpy as np, torch
from fit import make_data
from medpose.kinematics.fit import fit
sk, truth, seq = make_data(3000, 5.0)
a = fit(seq, sk, device="cuda", progress=False)
b = fit(seq, sk, device="cpu", progress=False)
print("cuda vs cpu max angle diff", np.nanmax(np.abs(a.angles.to_numpy() - b.angles.to_numpy())),
      "resid diff", np.nanmax(np.abs(a.residual - b.residual)), "fitted diff", np.nanmax(np.abs(a.fitted - b.fitted)),
      a.q.dtype, a.limit_active.sum(), b.limit_active.sum(), a.converged_mask.sum(), b.converged_mask.sum())
c = fit(seq, sk, device="cuda", progress=False, chunk_size=700)
print("chunked cuda vs cpu", np.nanmax(np.abs(c.angles.to_numpy() - b.angles.to_numpy())))
