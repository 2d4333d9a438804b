// The table of the kernels compiled into the including namespace (each isa_<level>.cc includes
// this after the other -inl files, under its own target flags). `Q8` is the level's int8
// dot-product policy for Q8_0 / Q4_0 weights, `KQuant<Layout>` its policy for Q4_K / Q5_K
// super-blocks and `Q6k` for Q6_K's; a level with more (bf16 dot products, VNNI) starts from this
// table and overwrites the entries it improves.
template <class Q8, template <class> class KQuant, class Q6k>
KernelTable portable_kernel_table(Isa isa) {
  return {
      .isa = isa,
      .gemm_scratch_floats = kGemmScratchFloats,
      .gemv = gemv,
      .gemm = gemm,
      .pack_bf16_tokens = nullptr,
      .gemm_bf16dot = nullptr,
      .round_to_bf16 = round_to_bf16,
      .round_to_f16 = round_to_f16,
      .quantize_row_q8 = quantize_row_q8<Q8>,
      .gemv_q8 = gemv_q8<Q8>,
      .gemm_q8 = gemm_q8_dots<Q8>,
      .gemv_q4k = gemv_kquant<KQuant<Q4kLayout>>,
      .gemm_q4k = gemm_kquant_dots<KQuant<Q4kLayout>>,
      .gemv_q5k = gemv_kquant<KQuant<Q5kLayout>>,
      .gemm_q5k = gemm_kquant_dots<KQuant<Q5kLayout>>,
      .gemv_q6k = gemv_kquant<Q6k>,
      .gemm_q6k = gemm_kquant_dots<Q6k>,
      .rmsnorm = rmsnorm,
      .silu_glu = silu_glu,
      .silu_glu_backward = silu_glu_backward,
      .softmax = softmax,
      .add = add,
      .rope = rope,
      .attention = attention,
      .decode_attention = decode_attention,
      .backward_panel_cols = kNr,
      .backward_input_block = backward_input_block,
      .backward_pack_rows = backward_pack_rows,
      .backward_weight_block = backward_weight_block,
      .backward_input_block_bf16 = nullptr,
      .backward_pack_pair_rows = nullptr,
      .backward_pack_pair_columns = nullptr,
      .backward_weight_block_bf16 = nullptr,
      .cross_entropy_row = nullptr,
      .attention_backward_head = attention_backward_head,
      .attention_backward_scratch = attention_backward_scratch,
      .fma_flops = fma_flops,
      .bf16_dot_flops = nullptr,
      .read_sum = read_sum,
  };
}
