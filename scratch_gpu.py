import sys, time, os
sys.path.insert(0, "benchmarks")
import torch
from fit import make_data
from medpose.kinematics import fit as F
from torch.profiler import profile, ProfilerActivity, record_function
n = int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 19
sk, truth, seq = make_data(n, 5.0, device="cuda")
F.fit(seq.slice(0, 4096), sk, device="cuda", progress=False)
F.fit(seq, sk, device="cuda", progress=False, chunk_size=n)
for name in ["_solve", "_choose_branches", "_repair", "_rigid_init", "_normal_equations", "_interpolate"]:
    f0 = getattr(F, name)
    def mk(f0, name):
        def w(*a, **k):
            with record_function("S:" + name):
                return f0(*a, **k)
        return w
    setattr(F, name, mk(f0, name))
op = F._Context.poses
def p(self, q):
    with record_function("S:poses"):
        return op(self, q)
F._Context.poses = p
torch.cuda.synchronize()
t = time.perf_counter(); F.fit(seq, sk, device="cuda", progress=False, chunk_size=n); torch.cuda.synchronize(); print("plain fps", n / (time.perf_counter() - t))
with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as pr:
    t = time.perf_counter(); F.fit(seq, sk, device="cuda", progress=False, chunk_size=n); torch.cuda.synchronize(); print("profiled fps", n / (time.perf_counter() - t))
ka = pr.key_averages()
print("--- by cuda self time")
for e in sorted(ka, key=lambda e: -e.self_device_time_total)[:30]:
    print(f"{e.self_device_time_total/1e3:8.1f} ms {e.count:6d} {e.key[:90]}")
print("--- stages: cpu total / device total")
for e in sorted(ka, key=lambda e: -e.cpu_time_total):
    if e.key.startswith("S:"): print(f"{e.cpu_time_total/1e3:8.1f} {e.device_time_total/1e3:8.1f} ms {e.count:6d} {e.key}")
print("total device self", sum(e.self_device_time_total for e in ka) / 1e3)
kern = [e for e in ka if not e.key.startswith(("aten::", "S:", "cuda", "Activity")) and e.self_device_time_total > 0]
print("kernel+memcpy device time ms", sum(e.self_device_time_total for e in kern) / 1e3, "n kernels", sum(e.count for e in kern))
