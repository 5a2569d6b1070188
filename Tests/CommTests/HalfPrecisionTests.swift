import Comm
import Vocabulary
import XCTest

/// `HalfPrecision`'s fp32 ↔ bf16 / fp16 conversions, in process (no MPI):
/// round to nearest, ties to even; exact values stay exact; subnormals
/// round like any other value; fp16 overflows to ±Inf; NaN stays NaN.
final class HalfPrecisionTests: XCTestCase {
    private func float(_ bits: UInt32) -> Float { Float(bitPattern: bits) }
    private func pow2(_ e: Int) -> Float { Float(sign: .plus, exponent: e, significand: 1) }

    private func assertBF16(_ x: Float, _ want: UInt16, _ what: String, line: UInt = #line) {
        let got = HalfPrecision.bf16(x)
        XCTAssertEqual(got, want, "\(what): bf16(\(x)) = 0x\(String(got, radix: 16)), want 0x\(String(want, radix: 16))",
                       line: line)
    }

    private func assertFP16(_ x: Float, _ want: UInt16, _ what: String, line: UInt = #line) {
        let got = HalfPrecision.fp16(x)
        XCTAssertEqual(got, want, "\(what): fp16(\(x)) = 0x\(String(got, radix: 16)), want 0x\(String(want, radix: 16))",
                       line: line)
    }

    // MARK: - bf16 (the upper half of an fp32)

    func testBF16ExactValuesAreExact() {
        for (x, h) in [(Float(1), UInt16(0x3F80)), (-2, 0xC000), (0.5, 0x3F00), (3, 0x4040), (0, 0x0000),
                       (-0.0, 0x8000), (.infinity, 0x7F80), (-.infinity, 0xFF80),
                       (float(0x3F81_0000), 0x3F81), (.leastNormalMagnitude, 0x0080)] {
            assertBF16(x, h, "exact")
            XCTAssertEqual(HalfPrecision.float(bf16: h).bitPattern, x.bitPattern, "decode 0x\(String(h, radix: 16))")
        }
        // Every 16-bit value but NaN comes back unchanged through fp32.
        let changed = (0...UInt16.max).filter {
            !HalfPrecision.float(bf16: $0).isNaN && HalfPrecision.bf16(HalfPrecision.float(bf16: $0)) != $0
        }
        XCTAssertEqual(changed, [])
    }

    func testBF16RoundsToNearestEven() {
        // 1 + 2⁻⁸ lies halfway between 1 (0x3F80, even) and 1 + 2⁻⁷ (0x3F81).
        assertBF16(float(0x3F80_8000), 0x3F80, "tie, down to even")
        assertBF16(float(0x3F81_8000), 0x3F82, "tie, up to even")
        assertBF16(float(0xBF81_8000), 0xBF82, "negative tie, away from zero to even")
        assertBF16(float(0x3F80_8001), 0x3F81, "just above a tie")
        assertBF16(float(0x3F80_7FFF), 0x3F80, "just below a tie")
        assertBF16(float(0x3FFF_8000), 0x4000, "tie carrying into the exponent: 2")
    }

    func testBF16SubnormalsAndOverflow() {
        assertBF16(float(0x0001_0000), 0x0001, "smallest bf16 subnormal, exact")
        assertBF16(.leastNonzeroMagnitude, 0x0000, "smallest fp32 subnormal rounds to +0")
        assertBF16(float(0x0000_8000), 0x0000, "subnormal tie, down to even 0")
        assertBF16(float(0x0001_8000), 0x0002, "subnormal tie, up to even")
        assertBF16(float(0x0000_8001), 0x0001, "just above a subnormal tie")
        assertBF16(float(0x007F_FFFF), 0x0080, "largest subnormal rounds up to the smallest normal")
        assertBF16(float(0x7F7F_7FFF), 0x7F7F, "just below the tie at the top stays finite")
        assertBF16(float(0x7F7F_8000), 0x7F80, "tie above the largest bf16 rounds to Inf")
        assertBF16(.greatestFiniteMagnitude, 0x7F80, "largest fp32 rounds to Inf")
        assertBF16(-.greatestFiniteMagnitude, 0xFF80, "and to −Inf")
    }

    func testBF16NaNStaysNaN() {
        // 0x7F800001: a NaN whose payload lies in the low half only; cutting
        // it off would give Inf.
        for bits: UInt32 in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0xFF80_0001, 0x7FA0_0000, 0x7FFF_FFFF] {
            let h = HalfPrecision.bf16(float(bits))
            XCTAssertEqual(h & 0x7F80, 0x7F80, "0x\(String(bits, radix: 16))")
            XCTAssertNotEqual(h & 0x007F, 0, "0x\(String(bits, radix: 16)) became Inf")
            XCTAssertEqual(h & 0x8000, UInt16(bits >> 16) & 0x8000, "sign")
            XCTAssertTrue(HalfPrecision.float(bf16: h).isNaN)
        }
        assertBF16(.nan, 0x7FC0, "quiet NaN")
    }

    // MARK: - fp16 (IEEE binary16)

    func testFP16ExactValuesAreExact() {
        for (x, h) in [(Float(1), UInt16(0x3C00)), (-2, 0xC000), (0.5, 0x3800), (65504, 0x7BFF), (0, 0x0000),
                       (-0.0, 0x8000), (.infinity, 0x7C00), (-.infinity, 0xFC00),
                       (pow2(-14), 0x0400), (pow2(-24), 0x0001), (1023 * pow2(-24), 0x03FF)] {
            assertFP16(x, h, "exact")
            XCTAssertEqual(HalfPrecision.float(fp16: h).bitPattern, x.bitPattern, "decode 0x\(String(h, radix: 16))")
        }
        let changed = (0...UInt16.max).filter {
            !HalfPrecision.float(fp16: $0).isNaN && HalfPrecision.fp16(HalfPrecision.float(fp16: $0)) != $0
        }
        XCTAssertEqual(changed, [])
    }

    func testFP16RoundsToNearestEven() {
        // 1 + 2⁻¹¹ lies halfway between 1 (0x3C00, even) and 1 + 2⁻¹⁰ (0x3C01).
        let tie = 1 + pow2(-11)
        assertFP16(tie, 0x3C00, "tie, down to even")
        assertFP16(1 + 3 * pow2(-11), 0x3C02, "tie, up to even")
        assertFP16(-(1 + 3 * pow2(-11)), 0xBC02, "negative tie")
        assertFP16(tie.nextUp, 0x3C01, "just above a tie")
        assertFP16(tie.nextDown, 0x3C00, "just below a tie")
        assertFP16(2 - pow2(-11), 0x4000, "tie carrying into the exponent: 2")
    }

    func testFP16SubnormalsAndOverflow() {
        assertFP16(pow2(-25), 0x0000, "half the smallest subnormal: tie, down to even 0")
        assertFP16(-pow2(-25), 0x8000, "and to −0")
        assertFP16(pow2(-25).nextUp, 0x0001, "just above it")
        assertFP16(3 * pow2(-25), 0x0002, "subnormal tie, up to even")
        assertFP16(pow2(-26), 0x0000, "below half the smallest subnormal")
        assertFP16(.leastNonzeroMagnitude, 0x0000, "smallest fp32 subnormal")
        assertFP16(1023.5 * pow2(-24), 0x0400, "tie above the largest subnormal: the smallest normal")
        assertFP16(65519, 0x7BFF, "below the tie at the top stays finite")
        assertFP16(Float(65520).nextDown, 0x7BFF, "just below the tie")
        assertFP16(65520, 0x7C00, "tie above 65504 rounds to Inf")
        assertFP16(1e6, 0x7C00, "overflow")
        assertFP16(-1e6, 0xFC00, "overflow to −Inf")
        assertFP16(.greatestFiniteMagnitude, 0x7C00, "largest fp32")
    }

    func testFP16NaNStaysNaN() {
        for bits: UInt32 in [0x7FC0_0000, 0xFFC0_0000, 0x7F80_0001, 0x7FA0_0000, 0x7FFF_FFFF] {
            let h = HalfPrecision.fp16(float(bits))
            XCTAssertEqual(h & 0x7C00, 0x7C00, "0x\(String(bits, radix: 16))")
            XCTAssertNotEqual(h & 0x03FF, 0, "0x\(String(bits, radix: 16)) became Inf")
            XCTAssertTrue(HalfPrecision.float(fp16: h).isNaN)
        }
        XCTAssertTrue(HalfPrecision.float(fp16: 0x7E00).isNaN)
        XCTAssertTrue(HalfPrecision.float(fp16: 0xFC01).isNaN)
    }

    // MARK: - Buffers

    /// `encode` and `decode` apply the scalar conversions element by element
    /// and write exactly `count` elements.
    func testEncodeAndDecodeBuffers() {
        let values: [Float] = [1, -2, 0.1, 1 + pow2(-9), float(0x3F80_8000), pow2(-25), 65520, -1e6, 3e38, .nan, -0.0]
        let n = values.count
        let sentinel: UInt16 = 0xABCD
        let types: [(GradientDType, (Float) -> UInt16, (UInt16) -> Float)] = [
            (.bf16, { HalfPrecision.bf16($0) }, { HalfPrecision.float(bf16: $0) }),
            (.fp16, { HalfPrecision.fp16($0) }, { HalfPrecision.float(fp16: $0) }),
        ]
        for (type, scalar, back) in types {
            var encoded = [UInt16](repeating: sentinel, count: n + 1)
            values.withUnsafeBufferPointer { src in
                encoded.withUnsafeMutableBufferPointer { HalfPrecision.encode(src.baseAddress!, $0.baseAddress!, count: n, type) }
            }
            XCTAssertEqual(Array(encoded.prefix(n)), values.map(scalar), "\(type)")
            XCTAssertEqual(encoded[n], sentinel, "\(type): wrote past count")

            var decoded = [Float](repeating: 42, count: n + 1)
            encoded.withUnsafeBufferPointer { src in
                decoded.withUnsafeMutableBufferPointer { HalfPrecision.decode(src.baseAddress!, $0.baseAddress!, count: n, type) }
            }
            XCTAssertEqual(decoded.prefix(n).map(\.bitPattern), encoded.prefix(n).map { back($0).bitPattern }, "\(type)")
            XCTAssertEqual(decoded[n], 42, "\(type): wrote past count")
        }
    }
}
