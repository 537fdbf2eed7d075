"""Cost of one Jacobian of log C(k) (60 momenta) with respect to the 5 parameters, as the femto-inverse
least-squares baseline needs it: central differences in one batched solver call (11 potentials) against
forward-mode autodiff (torch.func.jacfwd) through the radial march, both after a warm-up, one thread.

    python benchmarks/femto_fit_jacobian.py
"""

import time

import torch

from hadrinv.physics.femtoscopy import GaussianYukawaPotential, correlation_function

torch.set_num_threads(1)
k = torch.linspace(5, 300, 60, dtype=torch.float64)


def model(p):
    C, _ = correlation_function(GaussianYukawaPotential(p[..., 1], p[..., 2], p[..., 3], p[..., 4]), k, p[..., 0])
    return torch.log(C)


p = torch.tensor([[1.3, -306.5, 73.9, -266.0, 0.78]], dtype=torch.float64)
with torch.no_grad():
    model(p.repeat(11, 1))
    t = time.perf_counter()
    for _ in range(10):
        model(p.repeat(11, 1))
    fd = (time.perf_counter() - t) / 10
jac = torch.func.jacfwd(lambda q: model(q[None])[0])
jac(p[0])
t = time.perf_counter()
for _ in range(3):
    jac(p[0])
ad = (time.perf_counter() - t) / 3
print(
    f"central differences (11 potentials, one batched call): {fd * 1e3:.1f} ms; "
    f"jacfwd: {ad * 1e3:.0f} ms; ratio {ad / fd:.0f}x"
)
