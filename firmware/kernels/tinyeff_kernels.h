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

/* FULLY_CONNECTED. BIAS is never NULL and holds the op's bias plus the input offset (-input zero
 * point) times the sum of (w + filter_offset) over the row: acc = bias[o] + sum((w + filter_offset) * x),
 * so the kernel never needs the input offset itself. */
typedef struct {
  int32_t rows, in_depth, out_depth;
  int32_t filter_offset, out_offset, act_min, act_max;
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

/* int8 tanh with LOGISTIC's parameters (TFLM prepares both alike). Its codes have zero point 0 and
 * scale 1/128 whatever the output tensor says, as TFLM writes them (the generator refuses any other
 * output quantization). OUT may alias IN. */
void te_tanh(const te_logistic_t *p, const int8_t *in, int8_t *out);

/* LEAKY_RELU: x - in_zp requantized by the identity multiplier where it is >= 0 and by alpha's where
 * it is negative, plus out_zp, saturated to int8. ALPHA_NEGATE (alpha < 0): TFLM applies alpha's
 * multiplier by magnitude and negates the product, which rounds differently from a negative
 * multiplier. OUT may alias IN. */
typedef struct {
  int32_t size, in_zp, out_zp;
  int32_t alpha_mult, alpha_shift, alpha_negate;
  int32_t identity_mult, identity_shift;
} te_leaky_relu_t;

void te_leaky_relu(const te_leaky_relu_t *p, const int8_t *in, int8_t *out);

/* HARD_SWISH, x * relu6(x + 3) / 6, in TFLM's int16 fixed point: the input on a 2^-7 finer scale,
 * a Q15 "relu-ish" factor in [0, 1] from the input over 3.0 (saturating), and its product with the
 * input on the output scale. Multipliers are Q15 with power-of-two exponents (out_exp <= 0).
 * OUT may alias IN. */
typedef struct {
  int32_t size, in_zp, out_zp;
  int32_t out_mult, out_exp;
  int32_t reluish_mult, reluish_exp;
} te_hard_swish_t;

void te_hard_swish(const te_hard_swish_t *p, const int8_t *in, int8_t *out);

/* RELU: requantize x - in_zp to the output scale, add out_zp, clamp to [act_min, act_max] (act_min
 * is the output's code of 0.0). OUT may alias IN. */
typedef struct {
  int32_t size, in_zp, out_zp, mult, shift, act_min, act_max;
} te_relu_t;

void te_relu(const te_relu_t *p, const int8_t *in, int8_t *out);

/* RELU6 as TFLM runs it: the input codes clamped to [lo, hi], the input's codes of 0.0 and 6.0, and
 * not requantized (the output tensor's quantization is not read). OUT may alias IN. */
typedef struct {
  int32_t size, lo, hi;
} te_clamp_t;

void te_clamp(const te_clamp_t *p, const int8_t *in, int8_t *out);

typedef struct {
  int32_t rows, depth;
  int32_t in_mult, in_left_shift, diff_min;
} te_softmax_t;

/* int8 in, int8 out (scale 1/256, zero point -128); OUT may alias IN. */
void te_softmax(const te_softmax_t *p, const int8_t *in, int8_t *out);

/* ADD, SUB, MUL, MAXIMUM and MINIMUM with broadcasting reduced to a repeat of the smaller operand
 * (see te_binary_t). SUB is ADD's arithmetic with b's term subtracted; MAXIMUM and MINIMUM compare
 * the codes of operands that share the output's quantization and use only size and the periods. */
typedef struct {
  int32_t size;                        /* output elements */
  int32_t a_period, b_period;          /* operand i repeats every i_period elements (== size: none) */
  int32_t a_offset, b_offset, out_offset;
  int32_t left_shift;                  /* ADD and SUB only */
  int32_t a_mult, a_shift, b_mult, b_shift, out_mult, out_shift;
  int32_t act_min, act_max;
} te_binary_t;

void te_add(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void te_sub(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void te_mul(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void te_maximum(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);
void te_minimum(const te_binary_t *p, const int8_t *a, const int8_t *b, int8_t *out);

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

/* STRIDED_SLICE of a tensor of at most four axes (padded in front with axes of 1): along axis k
 * the elements start[k], start[k] + stride[k], ... (count[k] of them, a stride may be negative),
 * written in order. Begin, end, masks and clamping are resolved by the generator as TFLM resolves
 * them. OUT must not overlap IN. */
typedef struct {
  int32_t in_dims[4];
  int32_t start[4], stride[4], count[4];
} te_slice_t;

void te_strided_slice(const te_slice_t *p, const int8_t *in, int8_t *out);

/* RESIZE_NEAREST_NEIGHBOR of an NHWC tensor: output pixel (y, x) is input pixel (src_y[y],
 * src_x[x]), the tables computed by the generator with TFLM's float32 arithmetic (align_corners,
 * half_pixel_centers). OUT must not overlap IN. */
typedef struct {
  int32_t in_w, c, out_h, out_w;
  const int32_t *src_y;                /* out_h entries */
  const int32_t *src_x;                /* out_w entries */
} te_resize_t;

void te_resize_nearest(const te_resize_t *p, const int8_t *in, int8_t *out);

/* TRANSPOSE_CONV (int8 input and weights, int32 bias). TFLM scatters each input pixel's products
 * into an int32 buffer of the whole output; this kernel gathers instead: output pixel (oy, ox)
 * sums, over the input pixels (iy, ix) and taps (fy, fx) with iy * stride_h - pad_top + fy == oy
 * (and likewise for x), (x + in_offset) * w. The sums are the same integers, with no buffer. Then
 * bias, per-channel requantization, out_offset and the clamp, as TFLM. The filter's zero point is
 * 0 (TFLM ignores it). OUT must not overlap IN. */
typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
  int32_t in_offset, out_offset;       /* -input zero point, output zero point */
  int32_t act_min, act_max;            /* fused activation as an int8 range */
  const int8_t *filter;                /* OHWI */
  const int32_t *bias;                 /* the op's bias per output channel (zeros when it has none), not folded */
  const int32_t *mult;                 /* per output channel */
  const int8_t *shift;
} te_transpose_conv_t;

void te_transpose_conv(const te_transpose_conv_t *p, const int8_t *in, int8_t *out);

/* ======================================================================================
 * int16 activations, int8 weights ("16x8"), in te_int16.c
 *
 * TFLM's 16x8 quantization: int16 activations with zero point 0, int8 weights, int64 biases
 * (int32 where the model asks for them). Generic C on every path. Ops that only move or clamp
 * values reuse the int8 structs above; RESHAPE is no kernel, CONCATENATION is te_concat with
 * blocks counted in bytes.
 * ====================================================================================== */

/* CONV_2D and DEPTHWISE_CONV_2D on int16. The accumulator is 64-bit, bias[oc] plus the
 * products of the taps inside the input (padding adds nothing: the zero point is 0).
 *  - ACC32 == 0 (int64 bias): TFLM's 64-bit requantization, whose multiplier is the Q31 one
 *    rounded to 16 bits; MULT holds that 16-bit multiplier and SHIFT the total right shift
 *    (8..46), both prepared by the generator: out = (acc * mult + 2^(shift-1)) >> shift.
 *  - ACC32 == 1 (int32 bias): TFLM accumulates in int32, so the sum is taken modulo 2^32, then
 *    requantized as int8 kernels do (te_requant with the Q31 MULT and SHIFT).
 * The output is clamped to [act_min, act_max], an int16 range. The layers never run in place,
 * so SCRATCH is always NULL. */
typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, dil_h, dil_w, pad_top, pad_left;
  int32_t depth_mult;                  /* depthwise only */
  int32_t act_min, act_max;
  int32_t acc32;
  const int8_t *filter;                /* conv OHWI, depthwise 1HWO */
  const int64_t *bias;                 /* per output channel, zeros when the op has none */
  const int32_t *mult;                 /* per output channel (see above) */
  const int8_t *shift;
} te_conv16_t;

void te_conv2d_16x8(const te_conv16_t *p, const int16_t *in, int16_t *out, int16_t *scratch);
void te_depthwise_conv2d_16x8(const te_conv16_t *p, const int16_t *in, int16_t *out, int16_t *scratch);

/* FULLY_CONNECTED on int16: as te_conv16_t, with one mult/shift pair unless PER_CHANNEL. */
typedef struct {
  int32_t rows, in_depth, out_depth;
  int32_t act_min, act_max, per_channel, acc32;
  const int8_t *filter;                /* [out_depth][in_depth] */
  const int64_t *bias;
  const int32_t *mult;
  const int8_t *shift;
} te_fc16_t;

void te_fully_connected_16x8(const te_fc16_t *p, const int16_t *in, int16_t *out);

/* Pools with te_pool_t; act_min and act_max are an int16 range. */
void te_average_pool_16(const te_pool_t *p, const int16_t *in, int16_t *out);
void te_max_pool_16(const te_pool_t *p, const int16_t *in, int16_t *out);

/* ADD (left_shift 15) and MUL with te_binary_t; the offsets are 0. OUT may alias an operand of
 * its size. */
void te_add_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
void te_mul_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);

/* QUANTIZE between int8 and int16 and from int16 to int16 (OUT may alias IN), float32 to int16;
 * DEQUANTIZE int16 to float32. Outputs saturate to their type. */
void te_requantize_8to16(const te_requantize_t *p, const int8_t *in, int16_t *out);
void te_requantize_16to8(const te_requantize_t *p, const int16_t *in, int8_t *out);
void te_requantize_16(const te_requantize_t *p, const int16_t *in, int16_t *out);
/* QUANTIZE to and from int32 (TFLM's Requantize: int8/int16 to int32, int32 to int8/int16). */
void te_requantize_8to32(const te_requantize_t *p, const int8_t *in, int32_t *out);
void te_requantize_16to32(const te_requantize_t *p, const int16_t *in, int32_t *out);
void te_requantize_32to8(const te_requantize_t *p, const int32_t *in, int8_t *out);
void te_requantize_32to16(const te_requantize_t *p, const int32_t *in, int16_t *out);
void te_quantize_float16(const te_float_quant_t *p, const float *in, int16_t *out);
void te_dequantize16(const te_float_quant_t *p, const int16_t *in, float *out);

/* PAD and PADV2 on int16: PAD_VALUE is an int16 value. */
void te_pad16(const te_pad_t *p, const int16_t *in, int16_t *out);

/* SUB (left_shift 15), MAXIMUM, MINIMUM, LEAKY_RELU, RELU, RELU6 (te_clamp_t), STRIDED_SLICE and
 * RESIZE_NEAREST_NEIGHBOR on int16 codes, with the int8 ops' structs and contracts; outputs
 * saturate to int16. */
void te_sub_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
void te_maximum_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
void te_minimum_16(const te_binary_t *p, const int16_t *a, const int16_t *b, int16_t *out);
void te_leaky_relu_16(const te_leaky_relu_t *p, const int16_t *in, int16_t *out);
void te_relu_16(const te_relu_t *p, const int16_t *in, int16_t *out);
void te_clamp_16(const te_clamp_t *p, const int16_t *in, int16_t *out);
void te_strided_slice_16(const te_slice_t *p, const int16_t *in, int16_t *out);
void te_resize_nearest_16(const te_resize_t *p, const int16_t *in, int16_t *out);

/* TRANSPOSE_CONV on int16: te_transpose_conv's gather with te_conv16_t's 64-bit accumulator and
 * requantization (MULT the 16-bit multiplier, SHIFT the total right shift); no offsets. OUT must
 * not overlap IN. */
typedef struct {
  int32_t in_h, in_w, in_c, out_h, out_w, out_c;
  int32_t k_h, k_w, stride_h, stride_w, pad_top, pad_left;
  int32_t act_min, act_max;
  const int8_t *filter;                /* OHWI */
  const int64_t *bias;                 /* per output channel, zeros when the op has none */
  const int32_t *mult;
  const int8_t *shift;
} te_transpose_conv16_t;

void te_transpose_conv_16x8(const te_transpose_conv16_t *p, const int16_t *in, int16_t *out);

/* ======================================================================================
 * UNIDIRECTIONAL_SEQUENCE_LSTM, TFLM's integer LSTM, in te_lstm.c
 *
 * int8 sequence [steps][n_input], output [steps][n_cell] and hidden state (asymmetric), int8
 * weights, int16 cell state (zero point 0), a batch of one. Per step each gate (input, forget,
 * cell, output) is two matrix products, input and previous hidden state, each requantized onto
 * the int16 gate scale 2^-12 and saturated, then added with saturation; sigmoid (tanh for the cell
 * gate) gives Q0.15. Then, per cell:
 *   cell = sat16(rq(forget * cell, FORGET) + rq(input * cellgate, INPUT)), clipped to +-CELL_CLIP
 *          when CLIP;
 *   hidden = clamp8(HIDDEN_ZP + rq(tanh(cell) * output, HIDDEN)), also written to the step's output,
 * rq being te_requant with the named multiplier and shift. The cell state enters the tanh as
 * (cell * TANH_MULT + round) >> TANH_SHIFT. HIDDEN and CELL are the variable tensors' own arrays,
 * read and updated in place; WORK is 4 * n_cell int16 in the arena. Arrays are by gate, in the
 * order above: X_WEIGHTS [4][n_cell][n_input], H_WEIGHTS [4][n_cell][n_cell]; X_BIAS [4][n_cell]
 * holds the gate bias minus the input zero point times the row's weight sum, H_BIAS minus the
 * hidden zero point times it, so the kernel multiplies raw codes.
 * ====================================================================================== */
typedef struct {
  int32_t steps, n_input, n_cell;
  const int8_t *x_weights;
  const int8_t *h_weights;
  const int32_t *x_bias;
  const int32_t *h_bias;
  const int32_t *x_mult;               /* [4], onto 2^-12 */
  const int32_t *x_shift;
  const int32_t *h_mult;
  const int32_t *h_shift;
  int32_t forget_mult, forget_shift, input_mult, input_shift;
  int32_t hidden_mult, hidden_shift, hidden_zp;
  int32_t clip, cell_clip;
  int32_t tanh_mult, tanh_shift;
  int8_t *work;                        /* 4 * n_cell int16, 4-aligned */
} te_lstm_t;

void te_lstm(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out);

/* X . W0 and X . W1 over N int8 entries, added to ACC[0] and ACC[1]: what a path's LSTM kernel
 * supplies to te_lstm_run, which runs the steps around it. te_lstm_dsp (te_lstm_dsp.c) is the
 * dsp path's. */
typedef void (*te_lstm_dot_fn)(const int8_t *x, const int8_t *w0, const int8_t *w1, int32_t n, int32_t acc[2]);
void te_lstm_run(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out, te_lstm_dot_fn dot);
void te_lstm_dsp(const te_lstm_t *p, const int8_t *in, int8_t *hidden, int16_t *cell, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TINYEFF_KERNELS_H */
