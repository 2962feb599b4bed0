import sys, time
sys.path.insert(0, "benchmarks")
import torch
from fit import make_data
from medpose.kinematics import fit as F
n = 1 << 20
sk, truth, seq = make_data(n, 5.0, device="cuda")
F.fit(seq.slice(0, 4096), sk, device="cuda", progress=False)
cnt = [0]
o_ne = F._normal_equations
def ne(*a):
    cnt[0] += 1; return o_ne(*a)
F._normal_equations = ne
o_s = F._solve
def sv(ctx, q0, *a, **k):
    torch.cuda.synchronize(); c0 = cnt[0]; t = time.perf_counter()
    r = o_s(ctx, q0, *a, **k); torch.cuda.synchronize()
    print(f"  _solve {q0.shape[0]:8d} frames {cnt[0]-c0:4d} iters {1e3*(time.perf_counter()-t):8.1f} ms")
    return r
F._solve = sv
t = time.perf_counter(); F.fit(seq, sk, device="cuda", progress=False); torch.cuda.synchronize(); print("total", time.perf_counter() - t)
