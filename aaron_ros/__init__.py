"""aaron_ros: coordinated multi-DNN perception for ROS 2."""

# Run from a source checkout, the generated message modules (aaron_ros.msg and its typesupport
# libraries) live in the install prefix's aaron_ros: look there too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)


def __getattr__(name: str) -> str:
    # __version__ is the installed distribution's, whose version setup.py takes from package.xml.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(__name__)
        except PackageNotFoundError:  # a source tree that was never built
            return "0+unknown"
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
