"""tinyeff's pytest plugin, used as a user's CI would: a test file run by pytest in a subprocess."""

from __future__ import annotations

import pytest

USER_TESTS = '''
import pytest

def test_digits_on_the_device(tinyeff_device):
    result = tinyeff_device.bench(r"{run}", limit=25)
    assert result.exact_agreement == 1.0 and result.accuracy == result.host_accuracy

@pytest.mark.hardware
def test_needs_a_board(tinyeff_device):
    pass
'''


def test_without_options_device_tests_skip_and_say_why(pytester, tiny_run):
    pytester.makepyfile(USER_TESTS.format(run=tiny_run))
    result = pytester.runpytest_subprocess("-rs")
    result.assert_outcomes(skipped=2)
    for reason in ("*pass --tinyeff-project*", "*needs a real board: pass --tinyeff-port*"):  # in the order the tests ran
        result.stdout.fnmatch_lines([reason])


@pytest.mark.emulator
def test_a_user_test_benches_a_model_in_qemu(pytester, tiny_run):
    pytester.makepyfile(USER_TESTS.format(run=tiny_run))
    result = pytester.runpytest_subprocess("-rs", "--tinyeff-project", str(tiny_run / "model.int8.tflite"),
                                           "--tinyeff-board", "qemu-mps2-an386")
    result.assert_outcomes(passed=1, skipped=1)
