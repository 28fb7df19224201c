"""Unit tests of the SDK's pure parts (no WIT imports), on a plain CPython:
python3 -m unittest discover -s guest-sdk/python/tests
The parts that call the host are tested end to end through `wasmpod run`."""

import importlib.util
import os
import sys
import unittest


def _load(name):
    # By path: importing the package itself needs the WIT bindings, which
    # exist only inside the component.
    path = os.path.join(os.path.dirname(__file__), "..", "wasmpod_sdk", name + ".py")
    spec = importlib.util.spec_from_file_location("wasmpod_sdk_" + name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_convert = _load("_convert")
_glue = _load("_glue")
HandlerFailure, Registry = _glue.HandlerFailure, _glue.Registry


class RunHandleTest(unittest.TestCase):
    def registry(self, handle):
        registry = Registry()
        registry.set_handler(handle)
        return registry

    def test_json_in_json_out(self):
        registry = self.registry(lambda value: {"got": value})
        self.assertEqual(registry.run_handle('{"a": [1, 2.5, "x"]}'), '{"got":{"a":[1,2.5,"x"]}}')

    def test_exception_becomes_type_and_message_with_traceback_details(self):
        def handle(_value):
            raise KeyError("missing")

        with self.assertRaises(HandlerFailure) as caught:
            self.registry(handle).run_handle("{}")
        self.assertEqual(caught.exception.message, "KeyError: 'missing'")
        self.assertIn("Traceback", caught.exception.details)
        self.assertIn("in handle", caught.exception.details)

    def test_exception_without_message_is_its_type(self):
        def handle(_value):
            raise RuntimeError()

        with self.assertRaises(HandlerFailure) as caught:
            self.registry(handle).run_handle("{}")
        self.assertEqual(caught.exception.message, "RuntimeError")

    def test_system_exit_is_a_job_error_not_a_trap(self):
        def handle(_value):
            sys.exit(3)

        with self.assertRaises(HandlerFailure) as caught:
            self.registry(handle).run_handle("{}")
        self.assertEqual(caught.exception.message, "SystemExit: 3")

    def test_invalid_input_json(self):
        with self.assertRaises(HandlerFailure) as caught:
            self.registry(lambda v: v).run_handle("{nope")
        self.assertTrue(caught.exception.message.startswith("invalid input: "), caught.exception.message)

    def test_unserializable_output(self):
        with self.assertRaises(HandlerFailure) as caught:
            self.registry(lambda v: {"s": {1, 2}}).run_handle("{}")
        self.assertEqual(
            caught.exception.message,
            "the handler's output could not be serialized to JSON: TypeError: Object of type set is not JSON serializable",
        )

    def test_nan_output_is_rejected_as_not_json(self):
        with self.assertRaises(HandlerFailure) as caught:
            self.registry(lambda v: float("nan")).run_handle("{}")
        self.assertIn("Out of range float values are not JSON compliant", caught.exception.message)

    def test_none_output_is_null(self):
        self.assertEqual(self.registry(lambda v: None).run_handle("{}"), "null")

    def test_no_handler_registered(self):
        with self.assertRaises(HandlerFailure) as caught:
            Registry().run_handle("{}")
        self.assertIn("no handler is registered", caught.exception.message)


class RegistrationTest(unittest.TestCase):
    def test_second_handler_is_refused(self):
        registry = Registry()

        def first(v):
            return v

        def second(v):
            return v

        registry.set_handler(first)
        registry.set_handler(first)  # idempotent
        with self.assertRaisesRegex(RuntimeError, "already registered .*first.*not also .*second"):
            registry.set_handler(second)

    def test_non_callable_is_refused(self):
        with self.assertRaisesRegex(TypeError, "handler must be callable, got int"):
            Registry().set_handler(3)

    def test_init_failure_is_reported(self):
        registry = Registry()

        def setup():
            raise FileNotFoundError("no model")

        registry.set_init(setup)
        with self.assertRaises(HandlerFailure) as caught:
            registry.run_init()
        self.assertEqual(caught.exception.message, "FileNotFoundError: no model")

    def test_no_init_is_fine(self):
        Registry().run_init()


class ConvertTest(unittest.TestCase):
    def test_flatten_nested(self):
        self.assertEqual(_convert.flatten([[1, 2, 3], [4, 5, 6]]), ([2, 3], [1, 2, 3, 4, 5, 6]))
        self.assertEqual(_convert.flatten(7.5), ([], [7.5]))
        self.assertEqual(_convert.flatten([]), ([0], []))
        self.assertEqual(_convert.flatten([[], []]), ([2, 0], []))

    def test_flatten_ragged_names_the_row(self):
        with self.assertRaisesRegex(ValueError, r"value\[1\] has length 1, expected length 2"):
            _convert.flatten([[1, 2], [3]])
        with self.assertRaisesRegex(ValueError, r"value\[1\] is a list"):
            _convert.flatten([1, [2]])

    def test_unflatten_round_trips(self):
        for nested in ([[1, 2, 3], [4, 5, 6]], [[[1], [2]], [[3], [4]]], [1, 2], 5):
            dims, flat = _convert.flatten(nested)
            self.assertEqual(_convert.unflatten(flat, dims), nested)
        self.assertEqual(_convert.unflatten([], [2, 0]), [[], []])

    def test_shape_checks(self):
        self.assertEqual(_convert.shape((2, 3)), [2, 3])
        with self.assertRaisesRegex(ValueError, r"shape\[1\] must be in 0\.\.=4294967295, got -1"):
            _convert.shape([2, -1])
        with self.assertRaisesRegex(TypeError, r"shape\[0\] must be an integer, got float 2.0"):
            _convert.shape([2.0])
        with self.assertRaisesRegex(TypeError, "shape must be a list of sizes"):
            _convert.shape("23")

    def test_f32_bytes(self):
        self.assertEqual(_convert.f32_list(_convert.f32_bytes([1, 2.5, -3])), [1.0, 2.5, -3.0])
        with self.assertRaisesRegex(TypeError, r"data\[1\] must be a number, got str 'x'"):
            _convert.f32_bytes([1.0, "x"])

    def test_i64_bytes(self):
        self.assertEqual(len(_convert.i64_bytes([1, -2, 2**62])), 24)
        with self.assertRaisesRegex(ValueError, r"data\[0\] must be in"):
            _convert.i64_bytes([2**63])
        with self.assertRaisesRegex(TypeError, r"data\[1\] must be an integer, got float"):
            _convert.i64_bytes([1, 1.5])


if __name__ == "__main__":
    unittest.main()
