import XCTest
@testable import VGGEngine

/// When vgg-dp replaces the kernel OpenBLAS picked, and the numerical check
/// that guards the replacement.
final class BLASKernelTests: XCTestCase {
    let avx512: Set<String> = ["sse3", "avx", "avx2", "fma", "avx512f", "avx512bw", "avx512dq", "avx512vl"]
    let avx2: Set<String> = ["sse3", "avx", "avx2", "fma"]

    func testUpgradesOnlyAnOldFallbackKernelWhenTheVariableIsUnset() {
        XCTAssertEqual(BLASKernel.upgrade(picked: "Prescott", flags: avx512, environment: [:]), "SkylakeX")
        XCTAssertEqual(BLASKernel.upgrade(picked: "Prescott", flags: avx2, environment: [:]), "Haswell")
        XCTAssertEqual(BLASKernel.upgrade(picked: "Sandybridge", flags: avx2, environment: [:]), "Haswell")
        // OpenBLAS knew the CPU: keep its choice.
        XCTAssertNil(BLASKernel.upgrade(picked: "Haswell", flags: avx512, environment: [:]))
        XCTAssertNil(BLASKernel.upgrade(picked: "SkylakeX", flags: avx512, environment: [:]))
        // A CPU without AVX2 + FMA has nothing better to offer.
        XCTAssertNil(BLASKernel.upgrade(picked: "Prescott", flags: ["sse3", "avx"], environment: [:]))
        XCTAssertNil(BLASKernel.upgrade(picked: "Prescott", flags: ["avx512f", "avx2"], environment: [:]))
    }

    func testNeverOverridesTheEnvironment() {
        // A machine's own setting (even a slow one) is a guard: never touched.
        XCTAssertNil(BLASKernel.upgrade(picked: "Prescott", flags: avx512, environment: ["OPENBLAS_CORETYPE": "Prescott"]))
        XCTAssertNil(BLASKernel.upgrade(picked: "Haswell", flags: avx512, environment: ["OPENBLAS_CORETYPE": "Haswell"]))
        // Switched off, or already re-executed once.
        XCTAssertNil(BLASKernel.upgrade(picked: "Prescott", flags: avx512, environment: ["VGGDP_OPENBLAS_KERNEL": "keep"]))
        XCTAssertNil(BLASKernel.upgrade(picked: "Prescott", flags: avx512, environment: ["VGGDP_OPENBLAS_FALLBACK": "Prescott"]))
        // An empty variable counts as unset, as OpenBLAS reads it.
        XCTAssertEqual(BLASKernel.upgrade(picked: "Prescott", flags: avx512, environment: ["OPENBLAS_CORETYPE": ""]), "SkylakeX")
    }

    /// The check a chosen kernel must pass: the kernel this test runs on
    /// (whichever the environment gives) agrees with a double-precision
    /// product to fp32 rounding, far inside the 1e-4 that rejects a kernel.
    func testSgemmCheckPassesOnTheRunningKernel() {
        let error = BLASKernel.sgemmError()
        XCTAssertGreaterThan(error, 0)
        XCTAssertLessThan(error, 1e-5, "OpenBLAS \(BLAS.coreName)")
    }
}
