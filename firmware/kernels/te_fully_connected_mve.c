/* FULLY_CONNECTED on Helium (MVE): the rows of the input times the [out_depth][in_depth] filter,
 * with the matrix multiply of the convolutions (te_conv_mve.c). The generator chooses this
 * kernel only when filter_offset is 0, so every product is a plain int8 x int8. */
#include "te_kernels_mve.h"

void te_fully_connected_mve(const te_fc_t *p, const int8_t *in, int8_t *out) {
  const te_mve_output_t q = {p->bias, p->mult, p->shift, p->per_channel, p->out_offset, p->act_min, p->act_max};
  te_mve_matmul(in, p->rows, p->in_depth, p->in_depth, p->filter, p->out_depth, &q, out, p->out_depth);
}
