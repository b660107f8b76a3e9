/* tinyeff compiled runtime: int8 kernels with TFLite Micro's arithmetic.
 *
 * Every kernel reproduces the rounding of TFLM's reference int8 kernels (double-rounding
 * requantization, gemmlowp fixed point), so a compiled model's output bytes equal the host
 * TFLM interpreter's. All parameters, weights and requantization constants are computed in
 * Python by tinyeff/codegen and live in flash as const structs; kernels use no heap and only
 * a few words of stack. Tensors are NHWC with batch 1, int8.
 */
#ifndef TINYEFF_KERNELS_H
#define TINYEFF_KERNELS_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* CONV_2D and DEPTHWISE_CONV_2D.
 *
 * BIAS is never NULL and already holds the op's bias plus in_offset times the sum of the
 * channel's weights over all taps (folded by the generator). A kernel therefore accumulates
 * raw int8 inputs, acc = bias[oc] + sum(w * x), where a tap that falls in the padding reads the
 * input zero point (-in_offset): that is exactly TFLM's bias + sum over valid taps of
 * w * (x + in_offset), with no per-MAC offset and no border special case. */
typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
  int32_t depth_mult;                  /* depthwise only */
  int32_t in_offset, out_offset;       /* -input zero point, output zero point */
  int32_t act_min, act_max;            /* fused activation as an int8 range */
  const int8_t *filter;                /* conv OHWI, depthwise 1HWO */
  const int32_t *bias;                 /* folded, per output channel (see above) */
  const int32_t *mult;                 /* per output channel */
  const int8_t *shift;
  int8_t *work;                        /* the kernel's work buffer in the arena (e.g. im2col), or NULL */
  int32_t ring_rows;                   /* in place: rows the ring holds (te_ring.h); 0: the whole span */
} te_conv_t;

/* In place. SCRATCH non-NULL means the output may overlap the input (the generator's plan
 * proved the order below safe); every path keeps the same order:
 *  - a 1x1, stride-1, unpadded conv ("pointwise") reads a group of G whole input pixels,
 *    computes their outputs into SCRATCH (G * out_c bytes) and only then copies them out;
 *    G is 1 in the generic kernel, and each path states its own;
 *  - any other conv, and every depthwise conv, first copies the input rows the next output row
 *    needs into a ring of ring_rows (at most (k_h - 1) * dil_h + 1) rows of in_w * in_c bytes at
 *    SCRATCH and reads those rows from the ring, the rest of its window from the input: always
 *    through te_ring_fill and te_ring_row (te_ring.h). */
void te_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void te_depthwise_conv2d(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring);

/* FULLY_CONNECTED. BIAS is never NULL and holds the op's bias plus in_offset times the sum of
 * (w + filter_offset) over the row: acc = bias[o] + sum((w + filter_offset) * x). */
typedef struct {
  int32_t rows, in_depth, out_depth;
  int32_t in_offset, filter_offset, out_offset, act_min, act_max;
  int32_t per_channel;                 /* mult/shift have out_depth entries, else one */
  const int8_t *filter;                /* [out_depth][in_depth] */
  const int32_t *bias;                 /* folded, per output (see above) */
  const int32_t *mult;
  const int8_t *shift;
} te_fc_t;

void te_fully_connected(const te_fc_t *p, const int8_t *in, int8_t *out);

typedef struct {
  int32_t in_h, in_w, c, out_h, out_w;
  int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
  int32_t act_min, act_max;
} te_pool_t;

void te_average_pool(const te_pool_t *p, const int8_t *in, int8_t *out);
void te_max_pool(const te_pool_t *p, const int8_t *in, int8_t *out);

/* MEAN over the height and width of an NHWC tensor (Keras GlobalAveragePooling2D). mult and
 * shift already hold in_scale / out_scale / (h * w), folded as TFLM folds them. */
typedef struct {
  int32_t h, w, c;
  int32_t in_zp, out_zp;
  int32_t mult, shift;
} te_mean_t;

void te_mean_hw(const te_mean_t *p, const int8_t *in, int8_t *out);

/* int8 sigmoid; the output's zero point is -128 and its scale 1/256, as TFLM requires. */
typedef struct {
  int32_t size, in_zp, radius, mult, left_shift;
} te_logistic_t;

void te_logistic(const te_logistic_t *p, const int8_t *in, int8_t *out);

typedef struct {
  int32_t rows, depth;
  int32_t in_mult, in_left_shift, diff_min;
} te_softmax_t;

/* int8 in, int8 out (scale 1/256, zero point -128); OUT may alias IN. */
void te_softmax(const te_softmax_t *p, const int8_t *in, int8_t *out);

/* ADD and MUL with broadcasting reduced to a repeat of the smaller operand (see te_binary_t). */
typedef struct {
  int32_t size;                        /* output elements */
  int32_t a_period, b_period;          /* operand i repeats every i_period elements (== size: none) */
  int32_t a_offset, b_offset, out_offset;
  int32_t left_shift;                  /* ADD only */
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} te_binary_t;

void te_add(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void te_mul(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);

/* QUANTIZE int8 -> int8: requantize to another scale and zero point; OUT may alias IN. */
typedef struct {
  int32_t size, in_zero_point, out_zero_point, mult, shift;
} te_requantize_t;

void te_requantize(const te_requantize_t *p, const int8_t *in, int8_t *out);

/* QUANTIZE float32 -> int8 (a model with float input) and DEQUANTIZE int8 -> float32 (float
 * output). SCALE is the tensor's float scale as the .tflite stores it. */
typedef struct {
  int32_t size, zero_point;
  float scale;
} te_float_quant_t;

void te_quantize_float(const te_float_quant_t *p, const float *in, int8_t *out);
void te_dequantize(const te_float_quant_t *p, const int8_t *in, float *out);

/* PAD: a 4-D NHWC tensor copied into a larger one filled with PAD_VALUE. */
typedef struct {
  int32_t in_dims[4], out_dims[4], before[4];
  int32_t pad_value;
} te_pad_t;

void te_pad(const te_pad_t *p, const int8_t *in, int8_t *out);

/* CONCATENATION of same-scale inputs along one axis: OUTER blocks of each input's BLOCK bytes. */
void te_concat(int32_t outer, int32_t n, const int32_t *block, const int8_t *const *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TINYEFF_KERNELS_H */
