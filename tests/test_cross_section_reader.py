"""Cross-section CSV: toy simulation, write/read round trip, and one-line errors for every bad input."""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict

import numpy as np
import pytest

from hadrinv.data.cross_sections import CrossSectionData, read_cross_sections, truth_path, write_cross_sections
from hadrinv.data.io import atomic_write_csv, atomic_write_json, atomic_write_text
from hadrinv.data.pipi_toy import PipiToySpec, pipi_grid, simulate_pipi, truth_resonances
from hadrinv.data.validation import DataError
from hadrinv.physics.pipi import S_THRESHOLD_GEV2

T = S_THRESHOLD_GEV2


def true_cross_section(s: np.ndarray, z: np.ndarray, spec: PipiToySpec) -> np.ndarray:
    """Independent numpy evaluation of |f0 + 3 f1 z|^2 / (64 pi^2 s)."""

    def bw(mass, width):
        mg = mass * width
        return mg / (mass**2 - s - 1j * mg)

    a = bw(spec.f0_mass_gev, spec.f0_width_gev) + 3 * bw(spec.rho_mass_gev, spec.rho_width_gev) * z
    return np.abs(a) ** 2 / (64 * math.pi**2 * s)


# ----------------------------------------------------------------------------------------------
# Toy simulation
# ----------------------------------------------------------------------------------------------


def test_regular_grid_is_above_threshold_and_ends_at_s_max():
    spec = PipiToySpec(n_s=8, n_z=5)
    s, z = pipi_grid(spec, np.random.default_rng(0))
    assert len(s) == len(z) == 40
    energies = np.unique(s)
    assert len(energies) == 8
    assert energies.min() > T
    assert energies.max() == pytest.approx(1.0)
    np.testing.assert_allclose(np.unique(z), np.linspace(-1, 1, 5))


def test_regular_grid_starts_one_step_above_threshold_and_ends_at_s_max():
    spec = PipiToySpec(n_s=8, n_z=3)
    s, _ = pipi_grid(spec, np.random.default_rng(0))
    step = (spec.s_max_gev2 - spec.s_min_gev2) / spec.n_s
    assert np.unique(s).min() == pytest.approx(spec.s_min_gev2 + step, rel=1e-12)
    assert np.unique(s).max() == pytest.approx(spec.s_max_gev2, rel=1e-12)


def test_irregular_grid_has_varying_angle_counts_per_energy():
    spec = PipiToySpec(n_s=20, n_z=16, grid="irregular", seed=3)
    data = simulate_pipi(spec)
    energies, counts = np.unique(data.s, return_counts=True)
    assert len(energies) == 20
    assert len(np.unique(counts)) > 1
    assert counts.min() >= 8 and counts.max() <= 24
    assert energies.min() >= spec.s_min_gev2 and energies.max() <= spec.s_max_gev2
    assert np.all(np.abs(data.cos_theta) <= 1.0)
    # energy_index maps every point to its energy
    np.testing.assert_array_equal(data.energies[data.energy_index], data.s)


def test_unknown_grid_and_bad_noise_are_rejected():
    with pytest.raises(ValueError):
        simulate_pipi(PipiToySpec(n_s=3, n_z=3, grid="hexagonal"))
    with pytest.raises(ValueError):
        simulate_pipi(PipiToySpec(n_s=3, n_z=3, noise=0.0))
    with pytest.raises(ValueError):
        simulate_pipi(PipiToySpec(n_s=3, n_z=3, noise_relative_to="mean"))


def test_simulation_is_reproducible_by_seed():
    a = simulate_pipi(PipiToySpec(n_s=6, n_z=6, seed=5))
    b = simulate_pipi(PipiToySpec(n_s=6, n_z=6, seed=5))
    c = simulate_pipi(PipiToySpec(n_s=6, n_z=6, seed=6))
    np.testing.assert_array_equal(a.dsigma_domega, b.dsigma_domega)
    assert not np.array_equal(a.dsigma_domega, c.dsigma_domega)


def test_point_noise_error_is_noise_times_truth_and_pulls_have_unit_variance():
    spec = PipiToySpec(n_s=64, n_z=64, noise=0.01, noise_relative_to="point", seed=0)
    data = simulate_pipi(spec)
    truth = true_cross_section(data.s, data.cos_theta, spec)
    np.testing.assert_allclose(data.error, 0.01 * truth, rtol=1e-12)
    pulls = (data.dsigma_domega - truth) / data.error
    assert len(pulls) == 4096
    assert 0.9 < pulls.std() < 1.1
    assert abs(pulls.mean()) < 0.1  # 6.4 sigma of the mean of 4096 unit pulls


def test_max_noise_error_is_noise_times_max_truth():
    spec = PipiToySpec(n_s=32, n_z=32, noise=0.02, noise_relative_to="max", seed=1)
    data = simulate_pipi(spec)
    truth = true_cross_section(data.s, data.cos_theta, spec)
    np.testing.assert_allclose(data.error, 0.02 * truth.max(), rtol=1e-12)
    pulls = (data.dsigma_domega - truth) / data.error
    assert 0.85 < pulls.std() < 1.15


def test_truth_records_the_generating_parameters():
    spec = PipiToySpec(n_s=4, n_z=4, rho_mass_gev=0.8)
    data = simulate_pipi(spec)
    assert data.truth["model"] == "pipi-breit-wigner"
    assert data.truth["rho_mass_gev"] == 0.8
    f0, rho = truth_resonances(data.truth)
    assert (f0.mass_gev, f0.width_gev, rho.mass_gev, rho.width_gev) == (
        spec.f0_mass_gev,
        spec.f0_width_gev,
        0.8,
        spec.rho_width_gev,
    )
    assert truth_resonances({}) is None


# ----------------------------------------------------------------------------------------------
# Round trip
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", ["regular", "irregular"])
def test_write_read_round_trip_with_truth_sidecar(tmp_path, grid):
    spec = PipiToySpec(n_s=6, n_z=5, grid=grid, seed=2)
    data = simulate_pipi(spec)
    path = write_cross_sections(data, tmp_path / "pipi.csv")
    assert path == tmp_path / "pipi.csv"
    assert truth_path(path) == tmp_path / "pipi.csv.truth.json"
    assert truth_path(path).is_file()
    back = read_cross_sections(path, S_THRESHOLD_GEV2)
    for name in ("s", "cos_theta", "dsigma_domega", "error"):
        np.testing.assert_array_equal(getattr(back, name), getattr(data, name))
        assert getattr(back, name).dtype == np.float64
    assert back.truth == data.truth == {"model": "pipi-breit-wigner", **asdict(spec)}
    assert back.source == str(path)
    assert len(back) == len(data)
    # no temporary files left behind by the atomic writer
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipi.csv", "pipi.csv.truth.json"]


def test_round_trip_without_error_column_and_without_truth(tmp_path):
    data = CrossSectionData(
        s=np.array([0.3, 0.3, 0.5]), cos_theta=np.array([-0.5, 0.5, 0.0]), dsigma_domega=np.array([1e-3, 2e-3, -1e-5])
    )
    path = write_cross_sections(data, tmp_path / "plain.csv")
    assert path.read_text().splitlines()[0] == "s,cos_theta,dsigma_domega"
    assert not truth_path(path).exists()
    back = read_cross_sections(path, S_THRESHOLD_GEV2)
    assert back.error is None
    assert back.truth == {}
    np.testing.assert_array_equal(back.dsigma_domega, data.dsigma_domega)
    np.testing.assert_array_equal(back.energies, [0.3, 0.5])
    np.testing.assert_array_equal(back.energy_index, [0, 0, 1])


def test_reader_accepts_reordered_columns_comments_blank_lines_and_bom(tmp_path):
    path = tmp_path / "odd.csv"
    path.write_bytes(
        "\ufeff# a comment\nerror, dsigma_domega ,cos_theta,s\n\n0.1,1.5,0.25,0.4\n# another\n0.2,2.5,-1,1.0\n".encode(
            "utf-8"
        )
    )
    data = read_cross_sections(path, S_THRESHOLD_GEV2)
    np.testing.assert_array_equal(data.s, [0.4, 1.0])
    np.testing.assert_array_equal(data.cos_theta, [0.25, -1.0])
    np.testing.assert_array_equal(data.dsigma_domega, [1.5, 2.5])
    np.testing.assert_array_equal(data.error, [0.1, 0.2])


def test_atomic_writers(tmp_path):
    atomic_write_text(tmp_path / "sub" / "a.txt", "hello\n")
    assert (tmp_path / "sub" / "a.txt").read_text() == "hello\n"
    atomic_write_json(tmp_path / "b.json", {"x": [1, 2.5]})
    assert json.loads((tmp_path / "b.json").read_text()) == {"x": [1, 2.5]}
    atomic_write_csv(tmp_path / "c.csv", ["a", "b"], [[1, 2], [3, 4]])
    assert (tmp_path / "c.csv").read_text() == "a,b\n1,2\n3,4\n"
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == ["a.txt", "b.json", "c.csv"]


# ----------------------------------------------------------------------------------------------
# Bad input: one-line DataError naming file, row and problem
# ----------------------------------------------------------------------------------------------

HEADER = "s,cos_theta,dsigma_domega,error\n"
GOOD_ROW = "0.5,0.1,0.002,0.0001\n"

# (id, file contents, expected row or None, regex the problem must match)
BAD_INPUTS = [
    ("missing_column", "s,cos_theta,error\n0.5,0.1,0.0001\n", 1, r"missing column.*dsigma_domega"),
    ("nan_value", HEADER + GOOD_ROW + "0.5,0.2,nan,0.0001\n", 3, r"dsigma_domega.*nan.*finite"),
    ("inf_value", HEADER + GOOD_ROW + GOOD_ROW + "0.5,0.2,0.002,inf\n", 4, r"error.*inf.*finite"),
    ("s_below_threshold", HEADER + "0.05,0.1,0.002,0.0001\n", 2, r"s = 0\.05.*threshold"),
    ("s_at_threshold", HEADER + f"{S_THRESHOLD_GEV2!r},0.1,0.002,0.0001\n", 2, r"threshold"),
    ("cos_theta_1.5", HEADER + GOOD_ROW + "0.5,1.5,0.002,0.0001\n", 3, r"cos_theta = 1\.5.*outside"),
    ("error_zero", HEADER + "0.5,0.1,0.002,0\n", 2, r"error = 0 must be positive"),
    ("error_negative", HEADER + GOOD_ROW + "0.5,0.1,0.002,-1\n", 3, r"error = -1 must be positive"),
    ("non_numeric", HEADER + GOOD_ROW + "0.5,abc,0.002,0.0001\n", 3, r"cos_theta.*'abc'.*not a number"),
    ("too_few_fields", HEADER + "0.5,0.1,0.002\n", 2, r"3 fields.*header has 4"),
    ("too_many_fields", HEADER + GOOD_ROW + "0.5,0.1,0.002,0.0001,7\n", 3, r"5 fields.*header has 4"),
    ("row_after_comment", HEADER + "# comment\n\n" + "0.5,0.1,0.002,-2\n", 4, r"must be positive"),
    ("empty_file", "", None, r"empty"),
    ("whitespace_only", "  \n\n", None, r"empty"),
    ("header_only", HEADER, None, r"no data rows"),
]


def check_one_line_error(error: DataError, path, row, pattern):
    message = str(error)
    assert "\n" not in message and "\r" not in message
    assert path.name in message
    assert re.search(pattern, message), message
    if row is None:
        assert re.search(rf"{re.escape(path.name)}:\d+:", message) is None, message
        assert error.row is None
    else:
        assert f"{path.name}:{row}:" in message, message
        assert error.row == row
    assert isinstance(error, ValueError)


@pytest.mark.parametrize("name,contents,row,pattern", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_one_line_data_error(tmp_path, name, contents, row, pattern):
    path = tmp_path / f"bad_{name}.csv"
    path.write_text(contents)
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    check_one_line_error(info.value, path, row, pattern)


def test_s_just_above_threshold_is_accepted(tmp_path):
    path = tmp_path / "edge.csv"
    s = float(np.nextafter(S_THRESHOLD_GEV2, 1.0))
    path.write_text(HEADER + f"{s!r},-1.0,0.002,0.0001\n{s!r},1.0,0.002,0.0001\n")
    assert read_cross_sections(path, S_THRESHOLD_GEV2).s[0] == s


@pytest.mark.parametrize(
    "garbage", [bytes(range(256)) * 8, b"\x89PNG\r\n\x1a\n\xff\xd8\xff\xe0" * 50], ids=["all_bytes", "png_like"]
)
def test_binary_garbage_not_utf8_raises_one_line_data_error(tmp_path, garbage):
    with pytest.raises(UnicodeDecodeError):
        garbage.decode("utf-8")
    path = tmp_path / "garbage.csv"
    path.write_bytes(garbage)
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    check_one_line_error(info.value, path, None, r"not a CSV text file.*UTF-8")


def test_utf8_text_with_nul_bytes_raises_one_line_data_error(tmp_path):
    path = tmp_path / "nul.csv"
    path.write_bytes(HEADER.encode() + b"0.5,0.1\x00\x00,0.002,0.0001\n")
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    check_one_line_error(info.value, path, None, r"binary")


def test_missing_file_raises_one_line_data_error(tmp_path):
    path = tmp_path / "does_not_exist.csv"
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    check_one_line_error(info.value, path, None, r"no such file")


def test_directory_instead_of_file_raises_data_error(tmp_path):
    with pytest.raises(DataError):
        read_cross_sections(tmp_path, S_THRESHOLD_GEV2)


def test_corrupt_truth_sidecar_raises_data_error_naming_the_sidecar(tmp_path):
    data = simulate_pipi(PipiToySpec(n_s=3, n_z=3))
    path = write_cross_sections(data, tmp_path / "d.csv")
    truth_path(path).write_text('{"model": "pipi-breit-wigner",\n  oops\n}\n')
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    check_one_line_error(info.value, truth_path(path), 2, r"not valid JSON")


def test_data_error_format():
    assert str(DataError("x.csv", "bad thing", 7)) == "x.csv:7: bad thing"
    assert str(DataError("x.csv", "bad thing")) == "x.csv: bad thing"


def test_form_feed_inside_a_comment_does_not_start_a_new_line(tmp_path):
    path = tmp_path / "ff.csv"
    path.write_text("# run 1\fpage 2\ns,cos_theta,dsigma_domega\n0.5,0.1,0.002\n")
    data = read_cross_sections(path, S_THRESHOLD_GEV2)
    np.testing.assert_array_equal(data.s, [0.5])


def test_reported_row_is_the_physical_line_after_a_form_feed(tmp_path):
    path = tmp_path / "ff_row.csv"
    path.write_text("# note\f\ns,cos_theta,dsigma_domega\n0.5,0.1,0.002\n0.5,2,0.002\n")  # bad row on line 4
    with pytest.raises(DataError) as info:
        read_cross_sections(path, S_THRESHOLD_GEV2)
    assert info.value.row == 4, str(info.value)
