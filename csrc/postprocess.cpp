// The fused generation tail: VAE output (float NCHW in [-1, 1]) -> uint8 NHWC, with optional
// d x d area downsampling (seed 003 stores 1024^2 images at 256^2).  One pass over the input,
// parallel over output rows (at::parallel_for, OpenMP in torch's CPU build).
//
// Per output value, in float32, in the same order as the torch reference
// (engine/ops/postprocess.py::vae_to_uint8_ref):
//   v = clamp(x / 2 + 0.5, 0, 1)              per input pixel
//   a = (sum of v over the d x d window, row-major) / (d * d)
//   out = nearbyint(a * 255)                  (round half to even, like torch.round)
//
// Schema:  synthclone::vae_to_uint8(Tensor x, int downsample) -> Tensor
// CPU impl here; the CUDA impl is in csrc/cuda/postprocess.cu (built when CUDA is usable).
#include <Python.h>

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

extern "C" {
// `import engine._C` only needs a module object: the ops register themselves through
// TORCH_LIBRARY below when the shared library is loaded (as pytorch/extension-cpp does).
PyObject* PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}
}

namespace synthclone {

void check_vae_to_uint8_args(const at::Tensor& x, int64_t downsample) {
  TORCH_CHECK(x.dim() == 4, "vae_to_uint8: expected x of shape (N, C, H, W), got ", x.sizes());
  TORCH_CHECK(at::isFloatingType(x.scalar_type()),
              "vae_to_uint8: expected a floating-point x (VAE output in [-1, 1]), got ",
              x.scalar_type());
  TORCH_CHECK(downsample >= 1, "vae_to_uint8: downsample must be >= 1, got ", downsample);
  TORCH_CHECK(x.size(2) % downsample == 0 && x.size(3) % downsample == 0,
              "vae_to_uint8: H and W (", x.size(2), ", ", x.size(3),
              ") must be divisible by downsample=", downsample);
}

namespace {

template <typename scalar_t>
void vae_to_uint8_kernel(const scalar_t* src, uint8_t* dst, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t d) {
  const int64_t Ho = H / d, Wo = W / d;
  const int64_t plane = H * W;
  const float inv_area = 1.0f / static_cast<float>(d * d);
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) {
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / Ho, oh = row % Ho;
      uint8_t* out_row = dst + row * Wo * C;  // (Wo, C) slice of the NHWC output
      for (int64_t c = 0; c < C; ++c) {
        const scalar_t* in_plane = src + (n * C + c) * plane + oh * d * W;  // window top row
        if (d == 1) {
          for (int64_t ow = 0; ow < Wo; ++ow) {
            float v = static_cast<float>(in_plane[ow]) / 2.0f + 0.5f;
            v = std::min(std::max(v, 0.0f), 1.0f);
            out_row[ow * C + c] = static_cast<uint8_t>(std::nearbyint(v * 255.0f));
          }
          continue;
        }
        for (int64_t ow = 0; ow < Wo; ++ow) {
          float sum = 0.0f;
          for (int64_t i = 0; i < d; ++i) {
            const scalar_t* p = in_plane + i * W + ow * d;
            for (int64_t j = 0; j < d; ++j) {
              float v = static_cast<float>(p[j]) / 2.0f + 0.5f;
              sum += std::min(std::max(v, 0.0f), 1.0f);
            }
          }
          // avg_pool2d divides by the window size; for d = 2, 4 the reciprocal is exact.
          const float a = sum * inv_area;
          out_row[ow * C + c] = static_cast<uint8_t>(std::nearbyint(a * 255.0f));
        }
      }
    }
  });
}

}  // namespace

at::Tensor vae_to_uint8_cpu(const at::Tensor& x, int64_t downsample) {
  check_vae_to_uint8_args(x, downsample);
  TORCH_CHECK(x.device().is_cpu(), "vae_to_uint8_cpu: x must be on the CPU, got ", x.device());
  const at::Tensor xc = x.contiguous();
  const int64_t N = xc.size(0), C = xc.size(1), H = xc.size(2), W = xc.size(3);
  at::Tensor out = at::empty({N, H / downsample, W / downsample, C}, xc.options().dtype(at::kByte));
  if (out.numel() == 0) return out;
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, xc.scalar_type(), "vae_to_uint8_cpu", [&] {
    vae_to_uint8_kernel<scalar_t>(xc.const_data_ptr<scalar_t>(), out.mutable_data_ptr<uint8_t>(),
                                  N, C, H, W, downsample);
  });
  return out;
}

TORCH_LIBRARY(synthclone, m) {
  m.def("vae_to_uint8(Tensor x, int downsample) -> Tensor");
}

TORCH_LIBRARY_IMPL(synthclone, CPU, m) {
  m.impl("vae_to_uint8", &vae_to_uint8_cpu);
}

}  // namespace synthclone
