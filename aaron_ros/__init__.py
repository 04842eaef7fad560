"""aaron_ros: coordinated multi-DNN perception for ROS 2."""

# Run from a source checkout, the generated message modules (aaron_ros.msg and its typesupport
# libraries) live in the install prefix's aaron_ros: look there too.
__path__ = __import__("pkgutil").extend_path(__path__, __name__)

__version__ = "0.1.0"
