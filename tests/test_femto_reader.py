"""Correlation-function CSV: write/read round trip, and a one-line DataError naming file, row and problem
for bad input."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from hadrinv.data.femto import CorrelationData, read_correlation_csv, write_correlation_csv
from hadrinv.data.validation import DataError, read_truth, truth_path


def test_round_trip_with_error_and_truth_sidecar(tmp_path):
    rng = np.random.default_rng(0)
    k = np.sort(rng.uniform(1.0, 300.0, 40))
    C = 1.0 + 0.5 * np.exp(-k / 50.0) + 1e-3 * rng.standard_normal(40)
    error = rng.uniform(1e-3, 1e-2, 40)
    delta = 90.0 * np.exp(-k / 100.0) / 3.0
    truth = {"model": "femto-toy", "scattering_length_fm": 1.2, "source_radius_fm": 1.1, "seed": 3}
    path = write_correlation_csv(tmp_path / "sub" / "cf.csv", k, C, error, delta, truth=truth)
    assert path == tmp_path / "sub" / "cf.csv"
    assert path.read_text().splitlines()[0] == "k_mev,C,error,delta_deg"
    data = read_correlation_csv(path)
    for got, want in [(data.k_mev, k), (data.C, C), (data.error, error), (data.delta_deg, delta)]:
        np.testing.assert_allclose(got, want, rtol=1e-9)
    assert len(data) == 40 and data.source == str(path)
    assert read_truth(path) == truth
    assert truth_path(path).is_file()


def test_simulated_file_without_error_reads_back_when_error_not_required(tmp_path):
    k, C, delta = np.array([5.0, 10.0, 20.0, 40.0]), np.array([1.8, 1.5, 1.2, 1.05]), np.array([40.0, 30.0, 20.0, 10.0])
    path = write_correlation_csv(tmp_path / "sim.csv", k, C, delta_deg=delta)
    assert path.read_text().splitlines()[0] == "k_mev,C,delta_deg"
    assert not truth_path(path).exists()
    data = read_correlation_csv(path, require_error=False)
    assert data.error is None
    np.testing.assert_allclose(data.delta_deg, delta, rtol=1e-9)
    k_t, C_t, err_t = data.as_tensors(torch.float32)
    assert k_t.dtype == C_t.dtype == torch.float32 and err_t is None
    np.testing.assert_allclose(C_t.numpy(), C, rtol=1e-6)
    with pytest.raises(DataError, match=r"sim\.csv:1: missing column.*error"):
        read_correlation_csv(path)


def test_as_tensors_returns_error_and_dataclass_is_frozen():
    data = CorrelationData(
        np.array([1.0, 2.0, 3.0]), np.array([1.0, 1.0, 1.0]), np.array([0.1, 0.1, 0.1]), None, "simulated"
    )
    k, _, error = data.as_tensors()
    assert k.dtype == torch.float64 and error.tolist() == [0.1, 0.1, 0.1]
    with pytest.raises(AttributeError):
        data.source = "x"


def test_writer_rejects_columns_of_different_lengths(tmp_path):
    with pytest.raises(ValueError, match="C has 2 values"):
        write_correlation_csv(tmp_path / "x.csv", [1.0, 2.0, 3.0], [1.0, 1.0])


HEADER = "k_mev,C,error\n"
GOOD = "10,1.2,0.05\n20,1.1,0.05\n"  # lines 2-3 after HEADER
LAST = "30,1.05,0.05\n"

# (id, file contents, expected row or None, regex the problem must match)
BAD_INPUTS = [
    ("missing_error_column", "k_mev,C\n10,1.2\n20,1.1\n30,1.0\n", 1, r"missing column.*error"),
    ("missing_C_column", "k_mev,error\n10,0.1\n", 1, r"missing column.*\bC\b"),
    ("nan_C", HEADER + GOOD + "30,nan,0.05\n", 4, r"column C.*nan.*finite"),
    ("inf_k", HEADER + "inf,1.2,0.05\n" + GOOD, 2, r"k_mev.*inf.*finite"),
    ("negative_k", HEADER + GOOD + "-5,1.0,0.05\n", 4, r"k_mev = -5 must be positive \(relative momentum in MeV\)"),
    ("zero_k", HEADER + "0,1.2,0.05\n" + GOOD, 2, r"k_mev = 0 must be positive"),
    ("negative_error", HEADER + GOOD + "30,1.0,-0.1\n", 4, r"error = -0\.1 must be positive"),
    ("zero_error", HEADER + "10,1.2,0\n" + GOOD, 2, r"error = 0 must be positive"),
    ("negative_C", HEADER + "10,1.2,0.05\n15,-0.2,0.05\n" + LAST, 3, r"C = -0\.2 is negative"),
    ("unsorted_k", HEADER + GOOD + "15,1.0,0.05\n40,1.0,0.05\n", 4, r"k_mev decreases from 20 .*to 15"),
    ("duplicated_k", HEADER + GOOD + LAST + "30,1.0,0.05\n", 5, r"duplicated k_mev = 30"),
    ("k_in_gev", HEADER + "0.01,1.2,0.05\n0.05,1.1,0.05\n0.3,1.0,0.05\n", None, r"GeV or fm\^-1.*k in MeV"),
    ("two_points", HEADER + GOOD, None, r"2 data point.*at least 3"),
    ("empty_file", "", None, r"empty"),
    ("header_only", HEADER, None, r"no data rows"),
    (
        "bad_row_after_comments",
        "# measured by X\n" + HEADER + "# run 2\n\n" + "10,1.2,0.05\n-3,1.1,0.05\n",
        6,
        r"k_mev = -3 must be positive",
    ),
    (
        "unsorted_after_comments",
        "# note\n" + HEADER + "10,1.2,0.05\n# gap\n30,1.1,0.05\n\n20,1.0,0.05\n",
        7,
        r"decreases from 30 \(line 5\)",
    ),
    ("duplicate_after_comments", HEADER + "10,1.2,0.05\n# x\n10,1.1,0.05\n30,1.0,0.05\n", 4, r"duplicated.*line 2"),
]


@pytest.mark.parametrize("name,contents,row,pattern", BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_bad_input_raises_one_line_data_error(tmp_path, name, contents, row, pattern):
    path = tmp_path / f"bad_{name}.csv"
    path.write_text(contents)
    with pytest.raises(DataError) as info:
        read_correlation_csv(path)
    message = str(info.value)
    assert "\n" not in message and path.name in message
    assert re.search(pattern, message), message
    assert info.value.row == row, message
    if row is not None:
        assert f"{path.name}:{row}:" in message, message


def test_small_but_plausible_mev_values_are_accepted(tmp_path):
    path = tmp_path / "low_k.csv"
    path.write_text(HEADER + "0.5,1.9,0.1\n1.0,1.8,0.1\n2.5,1.7,0.1\n")  # max k >= 2: MeV near threshold
    assert len(read_correlation_csv(path)) == 3
