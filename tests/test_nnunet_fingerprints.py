"""tests/nnunet_fingerprints: the fingerprints kept for the test data sets match their files."""
from __future__ import annotations

import pytest

from tests.nnunet_fingerprints import fixture_data_sets, stored_fingerprint


@pytest.mark.parametrize("spec", fixture_data_sets(), ids=lambda spec: spec.name)
def test_each_planned_test_data_set_has_its_current_fingerprint(spec, tmp_path):
    spec.write_raw(tmp_path)
    assert stored_fingerprint(tmp_path / spec.name) is not None, \
        f"{spec.name} changed: run `.venv/bin/python -m tests.nnunet_fingerprints` and commit its files"


def test_a_changed_file_has_no_fingerprint(tmp_path):
    spec = fixture_data_sets()[0]
    spec.write_raw(tmp_path)
    label = sorted((tmp_path / spec.name / "labelsTr").iterdir())[0]
    label.write_bytes(label.read_bytes() + b"\0")
    assert stored_fingerprint(tmp_path / spec.name) is None
