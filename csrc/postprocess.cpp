// The fused generation tail: VAE output (float NCHW in [-1, 1]) -> uint8 NHWC, with optional
// d x d area downsampling (seed 003 stores 1024^2 images at 256^2).  One pass over the input,
// parallel over output rows (at::parallel_for, OpenMP in torch's CPU build).
//
// Per output value, in float32, in the same order as the torch reference
// (engine/ops/postprocess.py::vae_to_uint8_ref):
//   v = clamp(x / 2 + 0.5, 0, 1)              per input pixel
//   a = (sum over the window's rows of (sum of the row's d values)) / (d * d)
//       (avg_pool2d sums row-major in one chain; the grouping may flip a rare .5 tie by one level)
//   out = round_half_even(a * 255)            (like torch.round)
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
#include <cstdint>
#include <cstring>
#include <vector>

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

// Round half to even for 0 <= v <= 255 without a libm call or an int conversion (both keep gcc
// from vectorizing): adding 1.5 * 2^23 pushes the fraction out of the mantissa under the default
// round-to-nearest-even mode, leaving round(v) in the low mantissa bits.  Same result as
// std::nearbyint / torch.round.
constexpr float kRoundMagic = 12582912.0f;
inline uint8_t to_u8(float a) {
  const float r = a * 255.0f + kRoundMagic;
  uint32_t bits;
  std::memcpy(&bits, &r, sizeof(bits));
  return static_cast<uint8_t>(bits & 0xFFu);
}

inline float unit(float x) {  // [-1, 1] -> [0, 1], clamped
  const float v = x / 2.0f + 0.5f;
  return std::min(std::max(v, 0.0f), 1.0f);
}

// One output row (n, oh).  Per channel: the window's input rows are mapped to [0, 1] into a
// float scratch row (contiguous, vectorizable), summed per window column group, and stored as
// uint8 into a contiguous scratch row; then the channels are interleaved into the NHWC row.
// D > 0 is a compile-time window, D == 0 uses d_runtime.
template <typename scalar_t, int D>
inline void row_kernel(const scalar_t* src_n, uint8_t* out_row, float* fbuf, float* acc,
                       uint8_t* ubuf, int64_t C, int64_t H, int64_t W, int64_t oh,
                       int64_t d_runtime) {
  const int64_t d = D > 0 ? D : d_runtime;
  const int64_t Wo = W / d;
  const float inv_area = 1.0f / static_cast<float>(d * d);
  for (int64_t c = 0; c < C; ++c) {
    const scalar_t* top = src_n + c * H * W + oh * d * W;  // window top row in plane c
    uint8_t* u = ubuf + c * Wo;
    if (D == 1) {
      for (int64_t w = 0; w < W; ++w) fbuf[w] = unit(static_cast<float>(top[w]));
      for (int64_t w = 0; w < W; ++w) u[w] = to_u8(fbuf[w]);  // two simple loops vectorize
      continue;
    }
    for (int64_t ow = 0; ow < Wo; ++ow) acc[ow] = 0.0f;
    for (int64_t i = 0; i < d; ++i) {
      const scalar_t* in = top + i * W;
      for (int64_t w = 0; w < W; ++w) fbuf[w] = unit(static_cast<float>(in[w]));
      for (int64_t ow = 0; ow < Wo; ++ow) {
        float s = 0.0f;  // window row i, left to right
        for (int64_t j = 0; j < d; ++j) s += fbuf[ow * d + j];
        acc[ow] += s;
      }
    }
    for (int64_t ow = 0; ow < Wo; ++ow) u[ow] = to_u8(acc[ow] * inv_area);  // exact for d = 2, 4
  }
  if (C == 3) {
    for (int64_t ow = 0; ow < Wo; ++ow) {
      out_row[3 * ow] = ubuf[ow];
      out_row[3 * ow + 1] = ubuf[Wo + ow];
      out_row[3 * ow + 2] = ubuf[2 * Wo + ow];
    }
  } else {
    for (int64_t ow = 0; ow < Wo; ++ow)
      for (int64_t c = 0; c < C; ++c) out_row[ow * C + c] = ubuf[c * Wo + ow];
  }
}

template <typename scalar_t, int D>
void vae_to_uint8_kernel(const scalar_t* src, uint8_t* dst, int64_t N, int64_t C, int64_t H,
                         int64_t W, int64_t d) {
  const int64_t Ho = H / d, Wo = W / d;
  at::parallel_for(0, N * Ho, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> fbuf(static_cast<size_t>(W)), acc(static_cast<size_t>(Wo));
    std::vector<uint8_t> ubuf(static_cast<size_t>(C * Wo));
    for (int64_t row = begin; row < end; ++row) {
      const int64_t n = row / Ho, oh = row % Ho;
      row_kernel<scalar_t, D>(src + n * C * H * W, dst + row * Wo * C, fbuf.data(), acc.data(),
                              ubuf.data(), C, H, W, oh, d);
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
    const scalar_t* src = xc.const_data_ptr<scalar_t>();
    uint8_t* dst = out.mutable_data_ptr<uint8_t>();
    switch (downsample) {
      case 1: vae_to_uint8_kernel<scalar_t, 1>(src, dst, N, C, H, W, 1); break;
      case 2: vae_to_uint8_kernel<scalar_t, 2>(src, dst, N, C, H, W, 2); break;
      case 4: vae_to_uint8_kernel<scalar_t, 4>(src, dst, N, C, H, W, 4); break;
      default: vae_to_uint8_kernel<scalar_t, 0>(src, dst, N, C, H, W, downsample);
    }
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
