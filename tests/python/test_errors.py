"""The Python exception classes mirror the C++ hierarchy and subclass the builtins users catch."""
import metaprobe


def test_error_classes_subclass_builtins():
    assert issubclass(metaprobe.InvalidArgumentError, ValueError)
    assert issubclass(metaprobe.FormatError, ValueError)
    assert issubclass(metaprobe.IoError, OSError)
    assert issubclass(metaprobe.UnsupportedError, RuntimeError)
    for cls in (metaprobe.InvalidArgumentError, metaprobe.IoError, metaprobe.FormatError,
                metaprobe.UnsupportedError):
        assert issubclass(cls, metaprobe.MetaprobeError)


def test_version_is_a_string():
    assert metaprobe.__version__.count(".") == 2
