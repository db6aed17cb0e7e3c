"""pyrunc.security.rlimits: runc's 16 RLIMIT_* names, errors naming the JSON path."""

import resource

import pytest

from pyrunc.errors import ConfigError
from pyrunc.security import rlimits


def test_absent_is_empty():
    assert rlimits.parse(None) == []
    assert rlimits.parse([]) == []


def test_runc_spec_default():
    assert rlimits.parse([{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}]) == [(7, 1024, 1024)]


def test_every_name_matches_the_libc_number():
    assert len(rlimits.RLIMITS) == 16
    for name, number in rlimits.RLIMITS.items():
        if hasattr(resource, name):
            assert getattr(resource, name) == number, name


def test_order_kept_and_infinity():
    inf = 2**64 - 1
    got = rlimits.parse([{"type": "RLIMIT_CORE", "soft": 0, "hard": inf},
                         {"type": "RLIMIT_RTTIME", "soft": inf, "hard": inf}])
    assert got == [(4, 0, inf), (15, inf, inf)]


def test_unknown_type_names_the_path():
    with pytest.raises(ConfigError) as e:
        rlimits.parse([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1}, {"type": "RLIMIT_CPU", "soft": 1, "hard": 1},
                       {"type": "RLIMIT_FOO", "soft": 1, "hard": 1}])
    assert str(e.value) == 'process.rlimits.2.type: unknown rlimit "RLIMIT_FOO"'


def test_duplicate_is_an_error():
    with pytest.raises(ConfigError, match=r'^process\.rlimits\.1\.type: duplicate rlimit "RLIMIT_NOFILE" '
                                          r'\(also at process\.rlimits\.0\)$'):
        rlimits.parse([{"type": "RLIMIT_NOFILE", "soft": 1, "hard": 1},
                       {"type": "RLIMIT_NOFILE", "soft": 2, "hard": 2}])


def test_soft_above_hard():
    with pytest.raises(ConfigError, match=r"^process\.rlimits\.0: soft limit 2048 is above hard limit 1024"):
        rlimits.parse([{"type": "RLIMIT_NOFILE", "soft": 2048, "hard": 1024}])


@pytest.mark.parametrize("bad", [-1, 2**64, "10", None, True, 1.5])
def test_bad_values(bad):
    with pytest.raises(ConfigError, match=r"^process\.rlimits\.0\.soft: must be an unsigned 64-bit integer"):
        rlimits.parse([{"type": "RLIMIT_NOFILE", "soft": bad, "hard": 1}])


def test_custom_path_for_exec_process_json():
    with pytest.raises(ConfigError, match=r"^rlimits\.0\.type: "):
        rlimits.parse([{"type": "nope", "soft": 1, "hard": 1}], path="rlimits")
