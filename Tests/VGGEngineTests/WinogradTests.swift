import Foundation
import Vocabulary
import XCTest
@testable import VGGEngine

/// Distance of `got` from `want`: ||got − want||₂ / ||want||₂ and
/// max|got − want| / max|want| (errors relative to the tensor's scale: an
/// element-wise relative error means nothing where the reference is ~0).
struct TensorError: CustomStringConvertible {
    var normRelative = 0.0
    var maxRelative = 0.0
    var nonFinite = 0

    init(_ got: UnsafePointer<Float>, _ want: UnsafePointer<Float>, count: Int) {
        var d2 = 0.0, w2 = 0.0, dmax = 0.0, wmax = 0.0
        for i in 0..<count {
            let g = Double(got[i]), w = Double(want[i])
            if !g.isFinite { nonFinite += 1; continue }
            d2 += (g - w) * (g - w); w2 += w * w
            dmax = max(dmax, abs(g - w)); wmax = max(wmax, abs(w))
        }
        normRelative = w2 == 0 ? d2.squareRoot() : (d2 / w2).squareRoot()
        maxRelative = wmax == 0 ? dmax : dmax / wmax
    }

    var description: String {
        String(format: "norm-rel %.2e, max-rel %.2e", normRelative, maxRelative) + (nonFinite > 0 ? ", \(nonFinite) non-finite" : "")
    }
}

/// Winograd F(2×2, 3×3), F(4×4, 3×3), F(6×6, 3×3) and `auto` against the im2col
/// reference: forward (with bias and ReLU), backward-data, backward-weights
/// and bias, on random tensors, including sizes that are not multiples of
/// the tile (padded tiles), channel counts that are not multiples of the
/// 8-wide vectors or of the 64-channel transform block, the RGB layer, a
/// layer without input gradient, and chunks of a few tiles that straddle
/// images.
///
/// Error bounds, relative to the tensor's scale (max|Δ| / max|ref|, see
/// `TensorError`), with O(1) inputs and Glorot weights. im2col itself sums 9C
/// products in float, so the two differ by the rounding of both:
/// - F(2×2): transforms with entries 0, ±1, ±½ add a few ulps:
///   bound 2e-5 (measured ≤ ~2e-6).
/// - F(4×4): entries up to 8 and 1/24, and cancellation between them, lose
///   more: bound 5e-4 (measured ≤ ~2e-5 forward, ~5e-5 backward; printed).
/// - F(6×6): entries up to 32 and 1/90: bound 5e-3 (measured: printed).
/// A layout, padding or indexing bug gives errors of order 1.
final class WinogradTests: XCTestCase {
    static let bounds: [ConvAlgorithm: Double] = [.winograd2: 2e-5, .winograd4: 5e-4, .winograd6: 5e-3, .auto: 5e-4, .im2col: 1e-6]

    /// (in, out, height, width, batch, budget): budget in floats, 1 << 20 is
    /// "whole batch in one chunk".
    static let cases: [(Int, Int, Int, Int, Int, Int)] = [
        (16, 8, 8, 8, 2, 1 << 20),     // exact tiling for both
        (8, 16, 6, 10, 2, 1 << 20),    // 6×10: F4 pads to 8×12, F2 exact
        (12, 5, 7, 7, 3, 1 << 20),     // 7×7: both pad; K = 5 (scalar tails)
        (72, 24, 5, 6, 2, 1 << 20),    // C = 72: a 64-channel block and a tail of 8
        (3, 16, 9, 11, 2, 1 << 20),    // the RGB layer, odd sizes
        (16, 16, 2, 2, 3, 1 << 20),    // 2×2 images: one mostly-padded tile
        (10, 12, 9, 7, 3, 2 * 36 * 12 * 5), // chunks of 5 tiles (F4) straddling images
        (512, 16, 7, 7, 1, 1 << 20),   // VGG's depth: 512-term sums in every point's GEMM
    ]

    private func compare(_ algorithm: ConvAlgorithm, _ c: Int, _ k: Int, _ h: Int, _ w: Int, _ n: Int, _ budget: Int,
                         withInputGrad: Bool = true, file: StaticString = #filePath, line: UInt = #line) -> Double {
        let spec = LayerSpec.conv(name: "c", inChannels: c, outChannels: k, height: h, width: w)
        let key = UInt64(1000 * c + 100 * k + 10 * h + w)
        let ref = LayerHarness(spec: spec, batch: n, key: key, algorithm: .im2col, weightScale: nil,
                               withInputGrad: withInputGrad)
        let run = LayerHarness(spec: spec, batch: n, key: key, algorithm: algorithm, weightScale: nil,
                               workspaceBudget: budget, withInputGrad: withInputGrad)
        ref.forward(); run.forward()
        let forward = TensorError(run.output.base, ref.output.base, count: ref.output.count)
        ref.backward(); run.backward(outputFrom: ref)
        let wc = spec.weightCount
        let errors: [(String, TensorError)] = [
            ("forward", forward),
            ("dW", TensorError(run.gradients.base, ref.gradients.base, count: wc)),
            ("db", TensorError(run.gradients.base + wc, ref.gradients.base + wc, count: spec.biasCount)),
        ] + (withInputGrad ? [("dX", TensorError(run.inputGrad.base, ref.inputGrad.base, count: ref.inputGrad.count))] : [])
        let bound = Self.bounds[algorithm]!
        var worst = 0.0
        let label = "\(algorithm.rawValue)→\(run.conv.algorithm.rawValue) \(c)->\(k) \(h)x\(w) n\(n) tiles/chunk \(run.conv.chunkTiles)"
        print("[winograd] \(label): " + errors.map { "\($0.0) \($0.1)" }.joined(separator: "; "))
        for (what, e) in errors {
            XCTAssertEqual(e.nonFinite, 0, "\(label) \(what): unwritten or non-finite", file: file, line: line)
            XCTAssertLessThan(e.maxRelative, bound, "\(label) \(what)", file: file, line: line)
            worst = max(worst, e.maxRelative)
        }
        return worst
    }

    func testF2MatchesIm2col() {
        var worst = 0.0
        for (c, k, h, w, n, b) in Self.cases { worst = max(worst, compare(.winograd2, c, k, h, w, n, b)) }
        print("[winograd] F(2x2,3x3) worst max-rel error over all cases: \(String(format: "%.2e", worst))")
    }

    func testF4MatchesIm2col() {
        var worst = 0.0
        for (c, k, h, w, n, b) in Self.cases { worst = max(worst, compare(.winograd4, c, k, h, w, n, b)) }
        print("[winograd] F(4x4,3x3) worst max-rel error over all cases: \(String(format: "%.2e", worst))")
    }

    func testF6MatchesIm2col() {
        var worst = 0.0
        for (c, k, h, w, n, b) in Self.cases { worst = max(worst, compare(.winograd6, c, k, h, w, n, b)) }
        // 14×14 (VGG's last block): 8×8 tiles pad it to 18×18.
        worst = max(worst, compare(.winograd6, 32, 16, 14, 14, 2, 1 << 20))
        print("[winograd] F(6x6,3x3) worst max-rel error over all cases: \(String(format: "%.2e", worst))")
    }

    func testAutoMatchesIm2col() {
        for (c, k, h, w, n, b) in Self.cases { _ = compare(.auto, c, k, h, w, n, b) }
    }

    /// The first layer of a network has no input gradient: only dW and db.
    func testWithoutInputGradient() {
        for algorithm in [ConvAlgorithm.winograd2, .winograd4, .winograd6] {
            _ = compare(algorithm, 3, 8, 7, 10, 2, 1 << 20, withInputGrad: false)
        }
    }

    /// Chunking changes nothing but rounding (the GEMMs' shapes, and so
    /// OpenBLAS's blocking, change): F4 with chunks of 1, 3 and 7 tiles
    /// against the whole batch in one chunk, within 1e-5 (measured ~2e-6).
    func testChunkingGivesTheSameResult() {
        let spec = LayerSpec.conv(name: "c", inChannels: 8, outChannels: 8, height: 6, width: 10)
        let whole = LayerHarness(spec: spec, batch: 2, key: 5, algorithm: .winograd4, weightScale: nil)
        whole.forward(); whole.backward()
        for tiles in [1, 3, 7] {
            let run = LayerHarness(spec: spec, batch: 2, key: 5, algorithm: .winograd4, weightScale: nil,
                                   workspaceBudget: 2 * 36 * 8 * tiles)
            XCTAssertEqual(run.conv.chunkTiles, tiles)
            run.forward()
            let y = TensorError(run.output.base, whole.output.base, count: whole.output.count)
            run.backward(outputFrom: whole)
            let g = TensorError(run.gradients.base, whole.gradients.base, count: whole.gradients.count)
            let dx = TensorError(run.inputGrad.base, whole.inputGrad.base, count: whole.inputGrad.count)
            print("[winograd] F4 chunks of \(tiles) vs whole: forward \(y); dW,db \(g); dX \(dx)")
            for e in [y, g, dx] {
                XCTAssertEqual(e.nonFinite, 0)
                XCTAssertLessThan(e.maxRelative, 1e-5)
            }
        }
    }

    /// `auto`'s rule, and that an explicit algorithm applies everywhere.
    func testAlgorithmResolution() throws {
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 3, height: 224, width: 224), .winograd4)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 32, height: 2, width: 2), .im2col)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 32, height: 8, width: 7), .winograd2)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 64, height: 224, width: 224), .winograd6)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 128, height: 112, width: 112), .winograd6)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 128, height: 56, width: 56), .winograd4)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 512, height: 14, width: 14), .winograd4)
        XCTAssertEqual(ConvAlgorithm.auto.resolved(inChannels: 32, height: 4, width: 4), .winograd2)
        XCTAssertEqual(ConvAlgorithm.winograd4.resolved(inChannels: 3, height: 2, width: 2), .winograd4)
        XCTAssertEqual(ConvAlgorithm(rawValue: "winograd4x4"), .winograd4)
        XCTAssertEqual(ConvAlgorithm(rawValue: "winograd2x2"), .winograd2)
        XCTAssertEqual(ConvAlgorithm(rawValue: "winograd6x6"), .winograd6)
        XCTAssertEqual(ConvAlgorithm.allCases.map(\.rawValue), ["im2col", "winograd2x2", "winograd4x4", "winograd6x6", "auto"])

        let net = try Network(spec: tinySpec, batch: 1, convAlgorithm: .auto)
        let convs = net.convAlgorithms.compactMap { $0 }
        XCTAssertEqual(convs, [.winograd4, .winograd4, .winograd4, .winograd4, .winograd2, .winograd2, .im2col, .im2col])
        XCTAssertEqual(try Network(spec: tinySpec, batch: 1).convAlgorithms.compactMap { $0 }, Array(repeating: .im2col, count: 8))
    }

    /// A budget smaller than one tile of the widest layer: every layer falls
    /// back to chunks of one tile or more (whatever the shared buffer holds)
    /// and still computes the same network.
    func testTinyBudget() throws {
        let ctx = StepContext(step: 0, firstSample: 0, globalBatch: 2, training: true)
        var logits: [[Float]] = []
        for (a, budget) in [(ConvAlgorithm.im2col, Network.defaultWorkspaceFloats), (.winograd4, 100), (.auto, 100)] {
            let net = try Network(spec: tinySpec, batch: 2, keepProbability: 1, seed: 3, workspaceBudget: budget,
                                  convAlgorithm: a)
            SyntheticData(seed: 4, classes: 10, imageSize: 32).fill(images: net.images, labels: net.labels, step: 0,
                                                                    first: 0, count: 2, globalBatch: 2)
            net.forward(context: ctx)
            _ = net.loss(.crossEntropy)
            net.backward(context: ctx)
            XCTAssertFalse(net.gradients.toArray().contains { !$0.isFinite })
            logits.append(Array(UnsafeBufferPointer(start: net.logits, count: 20)))
        }
        for l in logits.dropFirst() {
            for (x, y) in zip(l, logits[0]) { XCTAssertEqual(x, y, accuracy: 1e-4 * max(1, abs(y))) }
        }
    }

    /// The full-size VGG-16 workspace stays within the stated sizes: the
    /// shared tile buffer within the budget, the transformed filter ≤ α²·512².
    func testWorkspaceSizes() {
        let specs = NetworkSpec(model: .vgg16).layers
        for (algorithm, a2) in [(ConvAlgorithm.winograd2, 16), (.winograd4, 36), (.winograd6, 64), (.auto, 36)] {
            let budget = Network.defaultWorkspaceFloats
            var floats = 0, filter = 0
            for s in specs {
                let r = ConvWorkspace.requirement(spec: s, batch: 32, budget: budget, algorithm: algorithm)
                floats = max(floats, r.floats); filter = max(filter, r.filterFloats)
            }
            print("[winograd] VGG-16 batch 32 \(algorithm.rawValue): tile buffer \((floats * 4) >> 20) MiB, filter \((filter * 4) >> 20) MiB")
            XCTAssertLessThanOrEqual(floats, budget)
            XCTAssertEqual(filter, a2 * 512 * 512)
        }
    }
}
