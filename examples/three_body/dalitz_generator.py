"""D_s+ -> K+ K- pi+ events from an isobar model, written as a four-momentum table: a sample made without hadrinv.

A stand-alone numpy program (it imports nothing from hadrinv), so that the event-generator workflow can be tried on
a table whose physics, kinematics and conventions it did not produce. The model is a textbook isobar sum:

    A = c_phi BW_1(m_KK; phi(1020)) Z_1(K+ K-; pi+) + c_K* BW_1(m_K-pi+; K*0(892)) Z_1(K- pi+; K+) + c_NR,

relativistic Breit-Wigners with mass-dependent P-wave widths and Blatt-Weisskopf barrier factors (r = 1.5 / GeV),
Zemach spin-1 factors, PDG 2024 masses and widths. The phi(1020) (4.2 MeV wide) is the narrow resonance; the K*(892)
(47 MeV) a band across the plot. Events are drawn flat in the Dalitz plot (flat phase space for a spin-0 decay),
kept with probability |A|^2 / max |A|^2, and given a random orientation in the D_s rest frame.

    python examples/three_body/dalitz_generator.py --events 300000 --out ds_kkpi.parquet

Columns: Kp_E, Kp_px, Kp_py, Kp_pz, Km_E, ..., pi_pz (GeV), in the D_s+ rest frame; `.csv` or `.parquet`.
"""

from __future__ import annotations

import argparse

import numpy as np

M_DS, M_K, M_PI = 1.96835, 0.493677, 0.13957039
PHI = (1.019461, 0.004249)
KSTAR = (0.89555, 0.0473)
R_BARRIER = 1.5  # GeV^-1
COUPLINGS = {"phi": 1.0, "kstar": 0.9 * np.exp(2.4j), "nr": 3.0 * np.exp(-0.6j)}


def breakup(s, ma, mb):
    """Momentum of a or b in the ab rest frame at ab invariant mass squared s."""
    lam = (s - (ma + mb) ** 2) * (s - (ma - mb) ** 2)
    return np.sqrt(np.clip(lam, 0.0, None) / (4.0 * s))


def breit_wigner_p(s, mass, width, ma, mb):
    q, q0 = breakup(s, ma, mb), breakup(mass**2, ma, mb)
    barrier = (1.0 + (R_BARRIER * q0) ** 2) / (1.0 + (R_BARRIER * q) ** 2)
    running = width * (q / q0) ** 3 * (mass / np.sqrt(s)) * barrier
    return np.sqrt(barrier) / (mass**2 - s - 1j * mass * running)


def zemach_p(s_ab, s_ac, s_bc, ma, mb, mc):
    """Spin-1 angular factor of P -> (ab) c."""
    return s_bc - s_ac + (M_DS**2 - mc**2) * (ma**2 - mb**2) / s_ab


def amplitude(s_kk, s_kmpi, s_kppi):
    phi = breit_wigner_p(s_kk, *PHI, M_K, M_K) * zemach_p(s_kk, s_kppi, s_kmpi, M_K, M_K, M_PI)
    kstar = breit_wigner_p(s_kmpi, *KSTAR, M_K, M_PI) * zemach_p(s_kmpi, s_kk, s_kppi, M_K, M_PI, M_K)
    return COUPLINGS["phi"] * phi + COUPLINGS["kstar"] * kstar + COUPLINGS["nr"]


def inside(s_kk, s_kmpi):
    """Whether (m_KK^2, m_K-pi+^2) lies in the Dalitz region (limits of s_kmpi at given s_kk)."""
    m = np.sqrt(s_kk)
    e_km = s_kk / (2.0 * m)  # K- energy in the K+K- frame (equal masses)
    e_pi = (M_DS**2 - s_kk - M_PI**2) / (2.0 * m)
    p_km, p_pi = np.sqrt(np.clip(e_km**2 - M_K**2, 0, None)), np.sqrt(np.clip(e_pi**2 - M_PI**2, 0, None))
    low, high = (e_km + e_pi) ** 2 - (p_km + p_pi) ** 2, (e_km + e_pi) ** 2 - (p_km - p_pi) ** 2
    return (s_kk > 4 * M_K**2) & (s_kk < (M_DS - M_PI) ** 2) & (s_kmpi > low) & (s_kmpi < high)


def dalitz_points(n, rng):
    s_kk_range = (4 * M_K**2, (M_DS - M_PI) ** 2)
    s_kpi_range = ((M_K + M_PI) ** 2, (M_DS - M_K) ** 2)
    # a bound on |A|^2 from a dense flat sample, with a 20 % margin
    s_kk, s_kmpi = rng.uniform(*s_kk_range, 2_000_000), rng.uniform(*s_kpi_range, 2_000_000)
    keep = inside(s_kk, s_kmpi)
    s_kk, s_kmpi = s_kk[keep], s_kmpi[keep]
    s_kppi = M_DS**2 + 2 * M_K**2 + M_PI**2 - s_kk - s_kmpi
    bound = 1.2 * np.max(np.abs(amplitude(s_kk, s_kmpi, s_kppi)) ** 2)
    out_kk, out_kpi = [], []
    total = 0
    while total < n:
        s_kk, s_kmpi = rng.uniform(*s_kk_range, 1_000_000), rng.uniform(*s_kpi_range, 1_000_000)
        keep = inside(s_kk, s_kmpi)
        s_kk, s_kmpi = s_kk[keep], s_kmpi[keep]
        s_kppi = M_DS**2 + 2 * M_K**2 + M_PI**2 - s_kk - s_kmpi
        weight = np.abs(amplitude(s_kk, s_kmpi, s_kppi)) ** 2
        if weight.max() > bound:
            raise RuntimeError("the |A|^2 bound was exceeded: raise its margin")
        keep = rng.uniform(0, bound, len(weight)) < weight
        out_kk.append(s_kk[keep])
        out_kpi.append(s_kmpi[keep])
        total += int(keep.sum())
    return np.concatenate(out_kk)[:n], np.concatenate(out_kpi)[:n]


def four_momenta(s_kk, s_kmpi, rng):
    """K+, K-, pi+ four-momenta (N, 4) in the D_s rest frame: energies from the invariants, the K- along z' and the
    pi+ in the x'z' plane, then a uniformly random rotation (a random unit quaternion)."""
    s_kppi = M_DS**2 + 2 * M_K**2 + M_PI**2 - s_kk - s_kmpi
    e_kp = (M_DS**2 + M_K**2 - s_kmpi) / (2 * M_DS)
    e_km = (M_DS**2 + M_K**2 - s_kppi) / (2 * M_DS)
    e_pi = (M_DS**2 + M_PI**2 - s_kk) / (2 * M_DS)
    p_km, p_pi = np.sqrt(e_km**2 - M_K**2), np.sqrt(e_pi**2 - M_PI**2)
    # angle between K- and pi+ from s_kmpi = (p_K- + p_pi)^2
    cos = np.clip((M_K**2 + M_PI**2 + 2 * e_km * e_pi - s_kmpi) / (2 * p_km * p_pi), -1.0, 1.0)
    zeros = np.zeros_like(cos)
    km = np.stack([zeros, zeros, p_km], 1)
    pi = np.stack([p_pi * np.sqrt(1 - cos**2), zeros, p_pi * cos], 1)
    kp = -(km + pi)
    q = rng.normal(size=(len(cos), 4))
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    w, x, y, z = q.T
    rotation = np.stack(
        [
            np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
            np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
            np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
        ],
        1,
    )

    def rotate(p):
        return np.einsum("nij,nj->ni", rotation, p)

    return [np.column_stack([e, rotate(p)]) for e, p in ((e_kp, kp), (e_km, km), (e_pi, pi))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=2024)
    parser.add_argument("--out", default="ds_kkpi.parquet")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    s_kk, s_kmpi = dalitz_points(args.events, rng)
    values = np.concatenate(four_momenta(s_kk, s_kmpi, rng), axis=1)
    names = [f"{p}_{c}" for p in ("Kp", "Km", "pi") for c in ("E", "px", "py", "pz")]
    if args.out.endswith(".csv"):
        np.savetxt(args.out, values, delimiter=",", header=",".join(names), comments="", fmt="%.10g")
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.table({n: values[:, j] for j, n in enumerate(names)}), args.out)
    print(f"{len(values)} events -> {args.out}")


if __name__ == "__main__":
    main()
