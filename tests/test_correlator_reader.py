"""R(t, r) files: round trips through HDF5 and CSV, and one clear line for every kind of bad input."""

import h5py
import numpy as np
import pytest
import torch

from hadrinv.cli import main
from hadrinv.data.correlators import CorrelatorData, read_correlator, write_correlator
from hadrinv.data.validation import DataError, read_truth


def _data(configurations=2, sources=2, times=4, radii=5, step=0.1):
    g = torch.Generator().manual_seed(0)
    return CorrelatorData(
        samples=torch.rand(configurations, sources, times, radii, generator=g, dtype=torch.float64),
        times=torch.arange(7, 7 + times),
        r_fm=step * torch.arange(1, radii + 1, dtype=torch.float64),
        sources=[f"s{i}" for i in range(sources)],
    )


@pytest.mark.parametrize("suffix", [".h5", ".csv"])
def test_round_trip(tmp_path, suffix):
    data = _data()
    path = write_correlator(tmp_path / f"R{suffix}", data, truth={"strengths_mev": [1.0], "ranges_fm": [0.5]})
    back = read_correlator(path)
    assert torch.equal(back.samples, data.samples)
    assert torch.equal(back.times, data.times)
    assert torch.allclose(back.r_fm, data.r_fm)
    assert back.step_fm == pytest.approx(0.1)
    assert read_truth(path)["ranges_fm"] == [0.5]


def _write_csv(path, lines):
    path.write_text("\n".join(lines) + "\n")
    return path


def _grid_lines(skip=None, extra=(), r_values=(0.1, 0.2, 0.3, 0.4), times=(1, 2, 3)):
    lines = ["t,r_fm,R"]
    for t in times:
        for r in r_values:
            if (t, r) != skip:
                lines.append(f"{t},{r},{1.0 + t + r}")
    return lines + list(extra)


@pytest.mark.parametrize(
    "lines, message, row",
    [
        (["t,r_fm"] + ["1,0.1"], "missing column(s) R", 1),
        (_grid_lines(extra=["2,0.2,nan"]), "must be finite", 14),
        (_grid_lines(extra=["2,0.2,5.0"]), "duplicate entry", 14),
        (_grid_lines(skip=(2, 0.3)), "missing entry: configuration 0, source 0, t = 2, r_fm = 0.3", None),
        (_grid_lines(r_values=(0.1, 0.2, 0.35, 0.4)), "not on the uniform grid", 4),
        (_grid_lines(times=(1, 2, 4)), "consecutive", None),
        (_grid_lines(times=(1, 2)), "at least 3", None),
        (["t,r_fm,R", "1.5,0.1,1.0"], "non-negative integer", 2),
        (["t,r_fm,R", "1,-0.1,1.0"], "must be positive", 2),
    ],
)
def test_bad_csv_names_file_row_and_problem(tmp_path, lines, message, row):
    path = _write_csv(tmp_path / "R.csv", lines)
    with pytest.raises(DataError) as info:
        read_correlator(path)
    assert message in str(info.value)
    assert str(info.value).startswith(str(path) + (f":{row}:" if row else ":"))


def test_bad_hdf5_files(tmp_path):
    path = tmp_path / "R.h5"
    path.write_bytes(b"not hdf5")
    with pytest.raises(DataError, match="not an HDF5 file"):
        read_correlator(path)
    data = _data()
    samples = data.samples.numpy().copy()
    samples[1, 0, 2, 3] = np.nan
    with h5py.File(path, "w") as f:
        f["R"], f["t"], f["r_fm"] = samples, data.times.numpy(), data.r_fm.numpy()
    with pytest.raises(DataError, match=r"R\[1, 0, 2, 3\] \(configuration 1, source 0, t = 9, r = 0.4 fm\) is nan"):
        read_correlator(path)
    with h5py.File(path, "w") as f:
        f["R"], f["t"], f["r_fm"] = data.samples.numpy()[..., :3], data.times.numpy(), data.r_fm.numpy()
    with pytest.raises(DataError, match="3 radii but t has 4 and r_fm 5"):
        read_correlator(path)
    with h5py.File(path, "w") as f:
        f["R"], f["t"] = data.samples.numpy(), data.times.numpy()
    with pytest.raises(DataError, match="missing dataset 'r_fm'"):
        read_correlator(path)


def test_cli_bad_correlator_file_exits_2_with_one_line(tmp_path, capsys):
    path = _write_csv(tmp_path / "R.csv", _grid_lines(skip=(3, 0.4)))
    code = main(["run", "halqcd-potential", "--data", str(path), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith(f"error: {path}: missing entry") and "\n" not in err
    assert not (tmp_path / "out").exists()  # validated before anything is written


def test_data_with_the_separable_case_is_refused(tmp_path, capsys):
    path = write_correlator(tmp_path / "R.h5", _data())
    assert (
        main(["run", "halqcd-potential", "--case", "separable", "--data", str(path), "--out", str(tmp_path / "o")]) == 2
    )
    assert "--case omega-omega" in capsys.readouterr().err
