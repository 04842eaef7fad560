"""Start the aaron_ros container: the coordinator and every perception component in ONE process.

    ros2 launch aaron_ros aaron.launch.py [config:=FILE] [bag:=BAG] [policy:=POLICY]

The same as `ros2 run aaron_ros aaron-ros run FILE [--bag BAG] [--policy POLICY]`, which is also
the way to start it where `launch` is not installed. Empty arguments mean "not given".
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_config = os.path.join(get_package_share_directory("aaron_ros"), "config", "f1tenth.yaml")
    return LaunchDescription([
        DeclareLaunchArgument("config", default_value=default_config,
                              description="container parameter file (see config/)"),
        DeclareLaunchArgument("bag", default_value="",
                              description="rosbag2 to replay as the camera; empty: no bag player"),
        DeclareLaunchArgument("policy", default_value="",
                              description="override aaron_coordinator's policy; empty: the file's"),
        Node(package="aaron_ros", executable="aaron-ros", name="aaron_container",
             arguments=["run", LaunchConfiguration("config"),
                        "--bag", LaunchConfiguration("bag"),
                        "--policy", LaunchConfiguration("policy"),
                        "--no-table"],
             output="screen"),
    ])
