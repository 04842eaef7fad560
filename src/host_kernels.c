/* Host-side frame work that numpy does slowly, compiled into libaaron_ros_host and called through
 * ctypes (aaron_ros/common/native.py). Plain C without the Python API: ctypes releases the
 * interpreter lock for the call, so another lane's Python runs meanwhile. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>

/* On x86-64 one build carries an AVX2 clone beside the baseline one, picked at load time. */
#if defined(__x86_64__) && defined(__GNUC__)
#define AARON_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define AARON_CLONES
#endif

enum { ARGMAX_BLOCK = 512 };

/* For each of `n` pixels, the index of the largest of `c` class planes (x[k * n + i]), as a uint8;
 * ties go to the lower class, as an argmax's do, and a NaN never wins. The running maximum and
 * index of a block of pixels stay in L1 while every plane passes over them; the index is int32,
 * the width of a float, so the compare and select vectorise. numpy needs 2c passes over the
 * whole mask for the same: on the reference machine, seg_net's 19 x 240 x 320, 4x slower right
 * after a cache eviction (0.46 against 2.03 ms), 12x warm. */
AARON_CLONES
void aaron_argmax_planes(const float *x, int64_t c, int64_t n, uint8_t *out) {
    float best[ARGMAX_BLOCK];
    int32_t index[ARGMAX_BLOCK];
    for (int64_t start = 0; start < n; start += ARGMAX_BLOCK) {
        const int64_t m = n - start < ARGMAX_BLOCK ? n - start : ARGMAX_BLOCK;
        for (int64_t i = 0; i < m; i++) {
            best[i] = x[start + i];
            index[i] = 0;
        }
        for (int32_t k = 1; k < c; k++) {
            const float *plane = x + k * n + start;
            for (int64_t i = 0; i < m; i++) {
                const int32_t above = -(plane[i] > best[i]);  /* all ones where this class leads */
                best[i] = plane[i] > best[i] ? plane[i] : best[i];
                index[i] = (index[i] & ~above) | (k & above);
            }
        }
        for (int64_t i = 0; i < m; i++) {
            out[start + i] = (uint8_t)index[i];
        }
    }
}

/* An RGB image's `pixels` (uint8, interleaved) as a model's float planes: plane k holds
 * (value - mean[k]) * scale[k] of the image's channel k, or of channel 2 - k when `bgr`. The same
 * arithmetic as OpenCV's blobFromImage, in one pass where it takes several (half its time). */
AARON_CLONES
void aaron_to_planes(const uint8_t *restrict rgb, int64_t pixels, const float *restrict mean,
                     const float *restrict scale, int32_t bgr, float *restrict planes) {
    const uint8_t *restrict first = rgb + (bgr ? 2 : 0), *restrict second = rgb + 1, *restrict third = rgb + (bgr ? 0 : 2);
    float *restrict p0 = planes, *restrict p1 = planes + pixels, *restrict p2 = planes + 2 * pixels;
    const float m0 = mean[0], m1 = mean[1], m2 = mean[2], s0 = scale[0], s1 = scale[1], s2 = scale[2];
    for (int64_t i = 0; i < pixels; i++) {
        p0[i] = ((float)first[3 * i] - m0) * s0;
        p1[i] = ((float)second[3 * i] - m1) * s1;
        p2[i] = ((float)third[3 * i] - m2) * s2;
    }
}

static float sigmoid(float x) { return 1.0f / (1.0f + expf(-x)); }

/* A YOLO-v2 head's (anchors * (5 + classes), h, w) output: per anchor tx, ty, tw, th, objectness,
 * then the class logits. Writes the boxes whose score (objectness times the best class's softmax
 * probability) is above `threshold`, in (anchor, row, column) order: x1, y1, x2, y2 in input pixels
 * (clipped to in_w x in_h), the score, and the best class (ties to the lower). `anchor_wh` holds
 * each anchor's (w, h) in grid cells; the outputs have room for anchors * h * w. Returns how many. */
int64_t aaron_yolo_candidates(const float *raw, int64_t anchors, int64_t classes, int64_t h, int64_t w,
                              const float *anchor_wh, float in_h, float in_w, float threshold,
                              float *boxes, float *scores, int64_t *labels) {
    const int64_t plane = h * w, per_anchor = (5 + classes) * plane;
    const float cell_h = in_h / (float)h, cell_w = in_w / (float)w;
    int64_t found = 0;
    for (int64_t a = 0; a < anchors; a++) {
        const float *p = raw + a * per_anchor;
        for (int64_t cell = 0; cell < plane; cell++) {
            const float *logit = p + 5 * plane + cell;
            int64_t best = 0;
            for (int64_t k = 1; k < classes; k++) {
                if (logit[k * plane] > logit[best * plane]) best = k;
            }
            float sum = 0.0f;  /* softmax's best probability: exp(0) / sum(exp(logit - best)) */
            for (int64_t k = 0; k < classes; k++) sum += expf(logit[k * plane] - logit[best * plane]);
            const float score = sigmoid(p[4 * plane + cell]) / sum;
            if (!(score > threshold)) continue;
            const float row = (float)(cell / w), col = (float)(cell % w);
            const float cx = (sigmoid(p[cell]) + col) * cell_w, cy = (sigmoid(p[plane + cell]) + row) * cell_h;
            const float half_w = expf(p[2 * plane + cell]) * anchor_wh[2 * a] * cell_w / 2.0f;
            const float half_h = expf(p[3 * plane + cell]) * anchor_wh[2 * a + 1] * cell_h / 2.0f;
            float *box = boxes + 4 * found;
            box[0] = fminf(fmaxf(cx - half_w, 0.0f), in_w);
            box[1] = fminf(fmaxf(cy - half_h, 0.0f), in_h);
            box[2] = fminf(fmaxf(cx + half_w, 0.0f), in_w);
            box[3] = fminf(fmaxf(cy + half_h, 0.0f), in_h);
            scores[found] = score;
            labels[found++] = best;
        }
    }
    return found;
}

typedef struct {
    double score;
    int64_t index;
} Ranked;

static int by_score(const void *a, const void *b) {
    const Ranked *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return (x->index > y->index) - (x->index < y->index);  /* equal scores keep their input order */
}

/* Greedy non-maximum suppression within each class: by descending score (ties in input order),
 * a box is kept unless its IoU with a kept box of its class is above `iou_threshold`; a box
 * without area, or without a score (NaN), is never kept. Writes at most `max_kept` indices into
 * `kept`; returns how many, or -1 when out of memory. */
int64_t aaron_nms(const double *boxes, const double *scores, const int64_t *labels, int64_t n,
                  double iou_threshold, int64_t max_kept, int64_t *kept) {
    Ranked *order = malloc((size_t)(n > 0 ? n : 1) * sizeof *order);
    if (order == NULL) return -1;
    int64_t m = 0, count = 0;
    for (int64_t i = 0; i < n; i++) {
        const double *b = boxes + 4 * i;
        if (b[2] > b[0] && b[3] > b[1] && scores[i] == scores[i]) order[m++] = (Ranked){scores[i], i};
    }
    qsort(order, (size_t)m, sizeof *order, by_score);
    for (int64_t r = 0; r < m && count < max_kept; r++) {
        const int64_t i = order[r].index;
        const double *b = boxes + 4 * i;
        const double area = (b[2] - b[0]) * (b[3] - b[1]);
        int keep = 1;
        for (int64_t q = 0; q < count && keep; q++) {
            const int64_t j = kept[q];
            if (labels[j] != labels[i]) continue;
            const double *c = boxes + 4 * j;
            const double iw = fmin(b[2], c[2]) - fmax(b[0], c[0]), ih = fmin(b[3], c[3]) - fmax(b[1], c[1]);
            if (iw <= 0 || ih <= 0) continue;
            const double inter = iw * ih;
            keep = inter / (area + (c[2] - c[0]) * (c[3] - c[1]) - inter) <= iou_threshold;
        }
        if (keep) kept[count++] = i;
    }
    free(order);
    return count;
}
