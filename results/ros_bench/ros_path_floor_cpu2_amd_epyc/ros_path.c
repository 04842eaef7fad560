/* The ROS side's floor, compiled: what ros_path.py does, in C on rcl with no interpreter. The
 * images are taken serialised from one subscription (as the package's shared subscription takes
 * them), the header read from the CDR, and for each image each task publishes its InferenceResult
 * with 11 timed parts (the detector 20 of 30 frames). No coordinator, model or thread hand-off.
 * Reported: CPU per frame received (three per image) of the main thread and of the rest (Fast
 * DDS's threads), from the 10th image until 3 s after the last. Built and run by ros_path_c.sh. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <rcl/error_handling.h>
#include <rcl/rcl.h>
#include <rmw/qos_profiles.h>
#include <rmw/serialized_message.h>
#include <rosidl_runtime_c/primitives_sequence_functions.h>
#include <rosidl_runtime_c/string_functions.h>
#include <sensor_msgs/msg/image.h>
#include <aaron_ros/msg/frame_time.h>
#include <aaron_ros/msg/inference_result.h>

#define CHECK(x)                                                                              \
  do {                                                                                        \
    rcl_ret_t r_ = (x);                                                                       \
    if (r_ != RCL_RET_OK) {                                                                   \
      fprintf(stderr, "%s failed: %s\n", #x, rcl_get_error_string().str);                     \
      exit(1);                                                                                \
    }                                                                                         \
  } while (0)

#define SKIP 10 /* images before the CPU is read, as ros_path.py */
#define PARTS 11

static double now_s(clockid_t c) {
  struct timespec t;
  clock_gettime(c, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(int argc, char **argv) {
  rcl_allocator_t alloc = rcl_get_default_allocator();
  rcl_init_options_t io = rcl_get_zero_initialized_init_options();
  CHECK(rcl_init_options_init(&io, alloc));
  rcl_context_t ctx = rcl_get_zero_initialized_context();
  CHECK(rcl_init(argc, (const char *const *)argv, &io, &ctx)); /* ROS_DOMAIN_ID from the environment */
  rcl_node_t node = rcl_get_zero_initialized_node();
  rcl_node_options_t no = rcl_node_get_default_options();
  CHECK(rcl_node_init(&node, "ros_path_floor_c", "", &ctx, &no));

  rcl_subscription_t sub = rcl_get_zero_initialized_subscription();
  rcl_subscription_options_t so = rcl_subscription_get_default_options();
  so.qos = rmw_qos_profile_sensor_data;
  CHECK(rcl_subscription_init(&sub, &node, ROSIDL_GET_MSG_TYPE_SUPPORT(sensor_msgs, msg, Image),
                              "camera/image_raw", &so));

  const char *tasks[3] = {"detector", "signs", "segmentation"};
  const uint8_t kinds[3] = {aaron_ros__msg__InferenceResult__KIND_DETECTIONS,
                            aaron_ros__msg__InferenceResult__KIND_CLASSES,
                            aaron_ros__msg__InferenceResult__KIND_MASK};
  rcl_publisher_t pubs[3];
  aaron_ros__msg__InferenceResult out[3];
  for (int k = 0; k < 3; k++) {
    char topic[64];
    snprintf(topic, sizeof topic, "%s/result", tasks[k]);
    pubs[k] = rcl_get_zero_initialized_publisher();
    rcl_publisher_options_t po = rcl_publisher_get_default_options();
    po.qos.depth = 10;
    CHECK(rcl_publisher_init(&pubs[k], &node, ROSIDL_GET_MSG_TYPE_SUPPORT(aaron_ros, msg, InferenceResult),
                             topic, &po));
    aaron_ros__msg__InferenceResult *m = &out[k];
    aaron_ros__msg__InferenceResult__init(m);
    rosidl_runtime_c__String__assign(&m->task, tasks[k]);
    rosidl_runtime_c__String__assign(&m->model, "m");
    rosidl_runtime_c__String__assign(&m->kernel_version, "00_stem:onnxruntime:t2");
    m->deadline_ms = 50.0;
    m->kind = kinds[k];
    aaron_ros__msg__FrameTime__Sequence__init(&m->timing, PARTS);
    for (int i = 0; i < PARTS; i++) {
      char part[16];
      snprintf(part, sizeof part, "part%d", i);
      rosidl_runtime_c__String__assign(&m->timing.data[i].part, part);
    }
    if (kinds[k] != aaron_ros__msg__InferenceResult__KIND_MASK) {
      rosidl_runtime_c__int32__Sequence__init(&m->class_ids, 3);
      rosidl_runtime_c__float__Sequence__init(&m->scores, 3);
      for (int i = 0; i < 3; i++) {
        m->class_ids.data[i] = i + 1;
        m->scores.data[i] = 0.9f - 0.3f * i;
      }
      if (kinds[k] == aaron_ros__msg__InferenceResult__KIND_DETECTIONS) {
        rosidl_runtime_c__float__Sequence__init(&m->boxes, 12);
        for (int i = 0; i < 12; i++) m->boxes.data[i] = 10.0f * (i % 4 + 1);
      }
    }
  }

  rcl_wait_set_t ws = rcl_get_zero_initialized_wait_set();
  CHECK(rcl_wait_set_init(&ws, 1, 0, 0, 0, 0, 0, &ctx, alloc));
  rmw_serialized_message_t raw = rmw_get_zero_initialized_serialized_message();
  if (rmw_serialized_message_init(&raw, 0, &alloc) != RMW_RET_OK) return 1;

  long images = 0, counted_from = -1;
  double cpu0 = 0, main0 = 0, last_image = 0;
  for (;;) {
    CHECK(rcl_wait_set_clear(&ws));
    CHECK(rcl_wait_set_add_subscription(&ws, &sub, NULL));
    rcl_ret_t w = rcl_wait(&ws, RCL_MS_TO_NS(50));
    if (w != RCL_RET_OK && w != RCL_RET_TIMEOUT) CHECK(w);
    double t = now_s(CLOCK_MONOTONIC);
    if (images > 0 && t - last_image > 3.0) break; /* the player is done */
    if (w == RCL_RET_TIMEOUT) continue;
    rmw_message_info_t info;
    while (rcl_take_serialized_message(&sub, &raw, &info, NULL) == RCL_RET_OK) {
      last_image = now_s(CLOCK_MONOTONIC);
      /* The header, read from the CDR as shared_input does: stamp, then frame_id. */
      const uint8_t *b = raw.buffer + 4;
      int32_t sec;
      uint32_t nanosec, len;
      memcpy(&sec, b, 4);
      memcpy(&nanosec, b + 4, 4);
      memcpy(&len, b + 8, 4);
      for (int k = 0; k < 3; k++) {
        if (k == 0 && images % 3 == 2) continue; /* the detector takes 20 of the camera's 30 frames */
        aaron_ros__msg__InferenceResult *m = &out[k];
        m->header.stamp.sec = sec;
        m->header.stamp.nanosec = nanosec;
        rosidl_runtime_c__String__assignn(&m->header.frame_id, (const char *)b + 12, len ? len - 1 : 0);
        m->frame = images;
        m->latency_ms = 20.0;
        m->queueing_ms = 1.0;
        m->input_delay_ms = 2.0;
        m->deadline_met = true;
        for (int i = 0; i < PARTS; i++) {
          m->timing.data[i].wall_ms = 1.0f;
          m->timing.data[i].cpu_ms = 0.5f;
        }
        CHECK(rcl_publish(&pubs[k], m, NULL));
      }
      images++;
      if (images == SKIP) {
        counted_from = images;
        cpu0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
        main0 = now_s(CLOCK_THREAD_CPUTIME_ID);
      }
    }
  }
  double cpu = now_s(CLOCK_PROCESS_CPUTIME_ID) - cpu0, mainc = now_s(CLOCK_THREAD_CPUTIME_ID) - main0;
  long n = images - counted_from, received = 3 * n;
  printf("%ld images, %ld frames received (compiled, rcl)\n", n, received);
  printf("  main      %.3f ms per frame received (%.3f per image)\n", mainc / received * 1e3, mainc / n * 1e3);
  printf("  dds       %.3f ms per frame received (%.3f per image)\n", (cpu - mainc) / received * 1e3,
         (cpu - mainc) / n * 1e3);
  printf("  total     %.3f ms per frame received\n", cpu / received * 1e3);
  return 0;
}
