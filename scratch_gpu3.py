import sys, time
sys.path.insert(0, "benchmarks")
import numpy as np
import torch
def tm(f, n=5):
    f(); torch.cuda.synchronize(); ts = []
    for _ in range(n):
        t = time.perf_counter(); f(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
    return round(min(ts) * 1e3, 2)
T = 1 << 20
A = torch.randn(T, 32, 40, device="cuda"); A = A @ A.transpose(1, 2) + torch.eye(32, device="cuda")
b = torch.randn(T, 32, 1, device="cuda")
L = torch.linalg.cholesky_ex(A)[0]
print("cholesky_ex", tm(lambda: torch.linalg.cholesky_ex(A)))
print("cholesky_solve", tm(lambda: torch.cholesky_solve(b, L)))
print("2x solve_triangular", tm(lambda: torch.linalg.solve_triangular(L.mT, torch.linalg.solve_triangular(L, b, upper=False), upper=True)))
print("solve_ex (LU)", tm(lambda: torch.linalg.solve_ex(A, b)))
print("cholesky_ex + inverse", tm(lambda: torch.cholesky_inverse(torch.linalg.cholesky_ex(A)[0])))
print("pin alloc 600MB", tm(lambda: torch.empty(150_000_000, pin_memory=True), 3))
src = torch.empty(150_000_000, pin_memory=True); dst = np.empty(150_000_000, dtype=np.float32)
print("np.copyto 600MB (touched)", tm(lambda: np.copyto(dst, src.numpy()), 3))
print("np.empty+copyto 600MB (fresh)", tm(lambda: np.copyto(np.empty(150_000_000, dtype=np.float32), src.numpy()), 3))
g = torch.randn(150_000_000, device="cuda")
print("D2H pinned 600MB", tm(lambda: src.copy_(g), 3))
h = np.random.rand(1 << 20, 26, 3)
print("H2D pageable f64 650MB", tm(lambda: torch.from_numpy(h).to("cuda"), 3))
print("host f64->f32 + H2D", tm(lambda: torch.from_numpy(h.astype(np.float32)).to("cuda"), 3))
