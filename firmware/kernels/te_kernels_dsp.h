/* tinyeff int8 kernels for cores with the DSP extension (Cortex-M4, M7, M33).
 *
 * Same structs, arithmetic and in-place contract as the generic kernels (tinyeff_kernels.h);
 * the outputs are the same bytes. On other cores (and on the host) te_simd_dsp.h supplies the
 * SIMD instructions in portable C, so these kernels run and are tested everywhere.
 *
 * Buffers (the generator sizes them; the arena places them 4-byte aligned, which the kernels
 * need: they read their work buffer with LDRD):
 *  - te_pointwise_dsp: pixel group 2 (both input pixels are read completely before either
 *    output pixel is written). p->work holds TE_DSP_POINTWISE_WORK_BYTES(in_c): the two pixels
 *    widened to int16. Having copied them there, the kernel never writes SCRATCH, so in place
 *    it needs no scratch bytes. Without a work buffer (p->work NULL) it runs te_conv2d.
 *  - te_conv2d_dsp (any conv but a pointwise one): p->work holds
 *    TE_DSP_CONV_WORK_BYTES(k_h * k_w * in_c): the im2col columns of two output pixels widened
 *    to int16. SCRATCH, when non-NULL, is the ring of input rows (te_ring.h).
 *  - te_depthwise_dsp (depth_mult 1): no work buffer; RING as in the contract.
 *  - te_fully_connected_dsp (filter_offset 0): no buffers.
 * Stack: at most about 250 bytes (a channel group's widened 3 x 3 weights and biases).
 */
#ifndef TE_KERNELS_DSP_H
#define TE_KERNELS_DSP_H

#include "tinyeff_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Two columns of DEPTH int8 values widened to int16, DEPTH rounded up to a multiple of 4. */
#define TE_DSP_COLUMNS_BYTES(depth) (4 * (((depth) + 3) / 4 * 4))
#define TE_DSP_POINTWISE_WORK_BYTES(in_c) TE_DSP_COLUMNS_BYTES(in_c)
#define TE_DSP_CONV_WORK_BYTES(k_h_k_w_in_c) TE_DSP_COLUMNS_BYTES(k_h_k_w_in_c)

void te_pointwise_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void te_conv2d_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *scratch);
void te_depthwise_dsp(const te_conv_t *p, const int8_t *in, int8_t *out, int8_t *ring);
void te_fully_connected_dsp(const te_fc_t *p, const int8_t *in, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* TE_KERNELS_DSP_H */
