// A timing driver for Krähenbühl's densecrf (version 2) C++ code, used by bench/crf.ts to run the
// reference on the same image, unary and parameters as our CRF, interleaved with ours. Only this
// driver is ours: bench/build-densecrf.sh compiles it against the densecrf sources of a local
// checkout (not part of this package) into test-output/.
//
// Usage: densecrf-driver W H C iterations w1 thetaAlpha thetaBeta w2 thetaGamma image.rgb unary.f32
//   image.rgb: W*H*3 bytes (RGB, row-major); unary.f32: W*H*C float32, -log p, C per pixel.
// Then one command per line on stdin:
//   run           builds the kernels and runs mean field; prints "<lattice ms> <inference ms>"
//   q <path>      writes the last run's Q (W*H*C float32, C per pixel) to <path>; prints "ok"
//   quit
// "lattice" is what DenseCRF2D::addPairwise* does (features, lattice construction, the
// normalisation's filtering); "inference" is DenseCRF::inference (unary, iterations).
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>
#include "densecrf.h"

static std::vector<char> readAll(const char* path, size_t expected) {
  std::ifstream in(path, std::ios::binary);
  std::vector<char> buf((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (buf.size() != expected) {
    std::fprintf(stderr, "%s: %zu bytes, expected %zu\n", path, buf.size(), expected);
    std::exit(2);
  }
  return buf;
}

int main(int argc, char** argv) {
  if (argc != 12) {
    std::fprintf(stderr, "usage: %s W H C iterations w1 thetaAlpha thetaBeta w2 thetaGamma image.rgb unary.f32\n", argv[0]);
    return 2;
  }
  const int W = std::atoi(argv[1]), H = std::atoi(argv[2]), C = std::atoi(argv[3]), iterations = std::atoi(argv[4]);
  const float w1 = std::atof(argv[5]), ta = std::atof(argv[6]), tb = std::atof(argv[7]);
  const float w2 = std::atof(argv[8]), tg = std::atof(argv[9]);
  const size_t n = size_t(W) * H;
  std::vector<char> image = readAll(argv[10], n * 3);
  std::vector<char> unaryBytes = readAll(argv[11], n * C * sizeof(float));
  MatrixXf unary(C, n);
  std::copy(reinterpret_cast<const float*>(unaryBytes.data()), reinterpret_cast<const float*>(unaryBytes.data()) + n * C, unary.data());

  MatrixXf Q;
  std::string line;
  while (std::getline(std::cin, line)) {
    if (line == "run") {
      using clock = std::chrono::steady_clock;
      DenseCRF2D crf(W, H, C);
      crf.setUnaryEnergy(unary);
      const auto t0 = clock::now();
      // Our order: appearance (bilateral) first, then smoothness.
      if (w1 > 0) crf.addPairwiseBilateral(ta, ta, tb, tb, tb, reinterpret_cast<const unsigned char*>(image.data()), new PottsCompatibility(w1));
      if (w2 > 0) crf.addPairwiseGaussian(tg, tg, new PottsCompatibility(w2));
      const auto t1 = clock::now();
      Q = crf.inference(iterations);
      const auto t2 = clock::now();
      const double lat = std::chrono::duration<double, std::milli>(t1 - t0).count();
      const double inf = std::chrono::duration<double, std::milli>(t2 - t1).count();
      std::printf("%.3f %.3f\n", lat, inf);
    } else if (line.rfind("q ", 0) == 0) {
      std::ofstream out(line.substr(2), std::ios::binary);
      out.write(reinterpret_cast<const char*>(Q.data()), sizeof(float) * Q.size());
      std::printf("ok\n");
    } else if (line == "quit") {
      break;
    } else {
      std::printf("error unknown command\n");
    }
    std::fflush(stdout);
  }
  return 0;
}
