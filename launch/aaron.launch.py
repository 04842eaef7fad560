"""Start the aaron_ros container: the coordinator and every perception component in ONE process.

    ros2 launch aaron_ros aaron.launch.py [config:=FILE] [bag:=BAG] [camera:=DEVICE] [policy:=POLICY]
        [namespace:=NS] [duration:=SECONDS] [log_level:=LEVEL] [autostart:=false]

The same as `ros2 run aaron_ros aaron-ros run FILE [--bag BAG] [--camera DEVICE] [--policy POLICY]
[--duration SECONDS] --ros-args -r __ns:=NS --log-level LEVEL -p autostart:=BOOL`, which is also the
way to start it where `launch` is not installed. Empty arguments mean "not given". A namespace moves
every relative topic and service of the container (camera/image_raw, aaron/<component>/result,
aaron/status, ...), so that two containers (two cameras, two robots) run side by side. With
autostart:=false the container waits, unconfigured, for a lifecycle manager (nav2_lifecycle_manager
with node_names: [aaron_container], or `ros2 lifecycle set /aaron_container configure`).
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
        DeclareLaunchArgument("camera", default_value="",
                              description="a camera index or video file to publish; empty: none"),
        DeclareLaunchArgument("policy", default_value="",
                              description="override aaron_coordinator's policy; empty: the file's"),
        DeclareLaunchArgument("namespace", default_value="",
                              description="namespace of every node, topic and service; empty: none"),
        DeclareLaunchArgument("duration", default_value="",
                              description="stop after this many seconds; empty: run until stopped"),
        DeclareLaunchArgument("log_level", default_value="info",
                              description="debug, info, warn, error or fatal"),
        DeclareLaunchArgument("autostart", default_value="true",
                              description="configure and activate at start; false: a lifecycle manager does"),
        Node(package="aaron_ros", executable="aaron-ros", name="aaron_container",
             namespace=LaunchConfiguration("namespace"),
             arguments=["run", LaunchConfiguration("config"),
                        "--bag", LaunchConfiguration("bag"),
                        "--camera", LaunchConfiguration("camera"),
                        "--policy", LaunchConfiguration("policy"),
                        "--duration", LaunchConfiguration("duration"),
                        "--no-table"],
             ros_arguments=["--log-level", LaunchConfiguration("log_level"),
                            "-p", ["autostart:=", LaunchConfiguration("autostart")]],
             output="screen"),
    ])
