import sys, time
sys.path.insert(0, "benchmarks")
import torch
from fit import make_data
from medpose.kinematics import fit as F
n = 1000000
import os
sk, truth, seq = make_data(n, 5.0, device="cuda")
F.fit(seq.slice(0, 4096), sk, device="cuda", progress=False)
for cs in [1 << 19, 1 << 20, None]:
    torch.cuda.reset_peak_memory_stats()
    torch.cuda.synchronize()
    t = time.perf_counter(); f = F.fit(seq, sk, device="cuda", progress=False, chunk_size=cs); torch.cuda.synchronize()
    print(cs, "fps", round(n / (time.perf_counter() - t)), "peak GB", torch.cuda.max_memory_allocated() / 2**30)
