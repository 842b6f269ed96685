// HRLKIT_HD marks functions compiled for the host and, under nvcc, for the device as well: the
// per-element math of the core is written once and called by the CPU loops and the CUDA kernels.
#pragma once

#if defined(__CUDACC__)
#define HRLKIT_HD __host__ __device__
#else
#define HRLKIT_HD
#endif
