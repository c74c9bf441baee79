// CUDA variant of csrc/postprocess.cpp (same schema, same arithmetic): one thread per output
// pixel and channel of the uint8 NHWC result.  Compiled only when CUDA is usable (setup.py).
#include <ATen/Dispatch.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include <cstdint>

namespace synthclone {

void check_vae_to_uint8_args(const at::Tensor& x, int64_t downsample);  // postprocess.cpp

namespace {

constexpr int kThreads = 256;

template <typename scalar_t>
__global__ void vae_to_uint8_cuda_kernel(const scalar_t* __restrict__ src,  // (N, C, H, W)
                                         uint8_t* __restrict__ dst,         // (N, Ho, Wo, C)
                                         int64_t total, int64_t C, int64_t H, int64_t W,
                                         int64_t d) {
  const int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (idx >= total) return;
  const int64_t Wo = W / d, Ho = H / d;
  const int64_t c = idx % C;
  const int64_t ow = (idx / C) % Wo;
  const int64_t oh = (idx / (C * Wo)) % Ho;
  const int64_t n = idx / (C * Wo * Ho);
  const scalar_t* p = src + ((n * C + c) * H + oh * d) * W + ow * d;
  float sum = 0.0f;
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < d; ++j) {
      float v = static_cast<float>(p[i * W + j]) / 2.0f + 0.5f;
      sum += fminf(fmaxf(v, 0.0f), 1.0f);
    }
  }
  const float a = __fmul_rn(sum, 1.0f / static_cast<float>(d * d));
  dst[idx] = static_cast<uint8_t>(nearbyintf(__fmul_rn(a, 255.0f)));
}

}  // namespace

at::Tensor vae_to_uint8_cuda(const at::Tensor& x, int64_t downsample) {
  check_vae_to_uint8_args(x, downsample);
  TORCH_CHECK(x.is_cuda(), "vae_to_uint8_cuda: x must be a CUDA tensor, got ", x.device());
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor xc = x.contiguous();
  const int64_t N = xc.size(0), C = xc.size(1), H = xc.size(2), W = xc.size(3);
  at::Tensor out = at::empty({N, H / downsample, W / downsample, C}, xc.options().dtype(at::kByte));
  const int64_t total = out.numel();
  if (total == 0) return out;
  const int64_t blocks = (total + kThreads - 1) / kThreads;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "vae_to_uint8_cuda", [&] {
    vae_to_uint8_cuda_kernel<scalar_t><<<blocks, kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        xc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<uint8_t>(), total, C, H, W, downsample);
  });
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

TORCH_LIBRARY_IMPL(synthclone, CUDA, m) {
  m.impl("vae_to_uint8", &vae_to_uint8_cuda);
}

}  // namespace synthclone
