import sys, time
sys.path.insert(0, "benchmarks")
import torch
from fit import make_data
from medpose.kinematics import fit as F
n = 1 << 20
sk, truth, seq = make_data(n, 5.0, device="cuda")
t = time.perf_counter(); a = torch.empty(n * 26 * 3 + n * 26 + n * 38 * 2, pin_memory=True); print("fresh pinned alloc (result-sized)", time.perf_counter() - t); del a
F.fit(seq.slice(0, 4096), sk, device="cuda", progress=False)
acc = {}
def wrap(obj, name, label):
    f0 = getattr(obj, name)
    def w(*a, **k):
        torch.cuda.synchronize(); t = time.perf_counter()
        r = f0(*a, **k); torch.cuda.synchronize()
        acc[label] = acc.get(label, 0) + time.perf_counter() - t
        return r
    setattr(obj, name, w)
for nm in ["_solve", "_rigid_init", "_choose_branches", "_repair", "_interpolate", "_to_device", "prepare"]:
    wrap(F, nm, nm)
wrap(F._Context, "evaluate_t", "evaluate_t")
for rep in range(2):
    acc.clear()
    torch.cuda.synchronize(); t = time.perf_counter(); F.fit(seq, sk, device="cuda", progress=False); torch.cuda.synchronize(); tot = time.perf_counter() - t
    print("total", round(tot, 3), {k: round(v, 3) for k, v in acc.items()}, "other", round(tot - sum(acc.values()), 3))
