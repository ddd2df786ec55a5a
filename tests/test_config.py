"""One Settings object: every CBIR_* variable validated, a bad value one line that names the variable."""

from __future__ import annotations

import pytest
from support import cli_setting_error

from cbir.config import DEFAULT_EF_SEARCH, settings
from cbir.errors import CbirError, ConfigError

BAD = {
    "CBIR_EF_SEARCH": ["0", "-3", "many", "1.5"],
    "CBIR_MAX_PIXELS": ["0", "lots"],
    "CBIR_MAX_BYTES": ["-1", "10MB"],
    "CBIR_MAX_UPLOAD_BYTES": ["0"],
    "CBIR_MAX_ASPECT": ["0", "inf", "wide"],
    "CBIR_PRECISION": ["float16", "FP32"],
    "CBIR_DEVICE": ["gpu"],
}


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, values in BAD.items() for v in values])
def test_bad_values_name_the_variable(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name) as caught:
        settings({name: value})
    assert repr(value) in str(caught.value) and isinstance(caught.value, CbirError)


def test_defaults_and_good_values() -> None:
    s = settings({})
    assert (s.ef_search, s.precision, s.device, s.model_from_env) == (DEFAULT_EF_SEARCH, "float32", "auto", False)
    s = settings({"CBIR_EF_SEARCH": "400", "CBIR_MAX_ASPECT": "2.5", "CBIR_MODEL": "phash", "CBIR_HOME": "/x"})
    assert (s.ef_search, s.max_aspect, s.model, s.model_from_env, str(s.pgdata)) == (
        400,
        2.5,
        "phash",
        True,
        "/x/pgdata",
    )


def test_the_cli_prints_a_bad_setting_as_one_line(tmp_path) -> None:
    """Read when used, not at import: the error comes from the command, as one line, exit code 2."""
    message = cli_setting_error(tmp_path, "CBIR_MAX_BYTES", "huge")
    assert message == "cbir: error: CBIR_MAX_BYTES must be a positive whole number of bytes, got 'huge'"
