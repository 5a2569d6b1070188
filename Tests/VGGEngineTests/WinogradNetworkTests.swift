import Foundation
import Vocabulary
import XCTest
@testable import VGGEngine

/// The whole-network gradient check of `GradientCheckTests` run with each
/// convolution algorithm: tiny VGG-11 (32×32, widths /16, 10 classes),
/// batch 1 (2 there; batches and chunks that straddle images are covered by
/// `WinogradTests` and `testAlgorithmsAgreeOnTheWholeNetwork`), cross-entropy, dropout 0.5 in training mode, 20 weights and 4
/// biases of every layer with parameters perturbed (45 and 5 there; fewer
/// here to keep three debug-build runs to ~15 s), branch changes of any
/// ReLU or pooling window detected and handled the same way (one-sided
/// difference, then h/4, then skip). See `testWholeNetworkGradients` for the
/// set-up and why the tolerance is relative error < 1e-2 per layer with at
/// least 10 entries per layer.
///
/// F(4×4) gets 3e-2. The numeric side is a difference of two forwards, so
/// its noise is the forward's rounding divided by h, and F(4×4)'s forward
/// rounds ~10× more than im2col's (`WinogradTests`). Measured worst layer
/// (conv1_1, where most perturbations change some ReLU and fall back to a
/// one-sided difference or h/4): with batch 2 and 45 + 5 entries per layer,
/// im2col 2.8e-3, F(2×2) 2.4e-3, F(4×4) 9.5e-3; here, printed. A wrong index, layout or missing
/// term gives errors of order 1.
///
/// The tiny network's images are 32, 16, 8, 4 and 2 pixels: with F(4×4)
/// the 2×2 and 4×4 layers are single padded tiles, and `auto` uses F(4×4),
/// F(2×2) and im2col in one network. The workspace budget (8 Ki floats) is
/// small enough that the larger layers run in several chunks.
final class WinogradNetworkTests: XCTestCase {
    func testWholeNetworkGradientsF2() throws { try checkWholeNetwork(.winograd2, tolerance: 1e-2) }
    func testWholeNetworkGradientsF4() throws { try checkWholeNetwork(.winograd4, tolerance: 3e-2) }
    func testWholeNetworkGradientsF6() throws { try checkWholeNetwork(.winograd6, tolerance: 3e-2) }
    func testWholeNetworkGradientsAuto() throws { try checkWholeNetwork(.auto, tolerance: 3e-2) }

    /// Every algorithm computes the same network: logits and gradients
    /// against im2col's on one batch, relative to their scale (see
    /// `TensorError`), within 1e-3 (F(4×4) measured ~1e-5; ReLU or pooling
    /// choices that differ between the runs would show as much larger errors).
    func testAlgorithmsAgreeOnTheWholeNetwork() throws {
        let ctx = StepContext(step: 4, firstSample: 6, globalBatch: 8, training: true)
        func run(_ a: ConvAlgorithm) throws -> Network {
            let net = try Network(spec: tinySpec, batch: 2, keepProbability: 0.5, seed: 7, convAlgorithm: a)
            let data = SyntheticData(seed: 107, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
            data.fill(images: net.images, labels: net.labels, step: 0, first: 0, count: 2, globalBatch: 2)
            for i in 0..<(2 * data.pixelsPerImage) { net.images[i] *= 50 }
            net.forward(context: ctx)
            _ = net.loss(.crossEntropy)
            net.backward(context: ctx)
            return net
        }
        let ref = try run(.im2col)
        for a in [ConvAlgorithm.winograd2, .winograd4, .winograd6, .auto] {
            let net = try run(a)
            let logits = TensorError(net.logits, ref.logits, count: 2 * tinySpec.classes)
            let grads = TensorError(net.gradients.base, ref.gradients.base, count: ref.gradients.count)
            print("[winograd] tiny vgg11 \(a.rawValue) vs im2col: logits \(logits); all gradients \(grads)")
            XCTAssertLessThan(logits.maxRelative, 1e-3, a.rawValue)
            XCTAssertLessThan(grads.normRelative, 1e-3, a.rawValue)
        }
    }

    private func checkWholeNetwork(_ algorithm: ConvAlgorithm, tolerance: Double,
                                   file: StaticString = #filePath, line: UInt = #line) throws {
        let net = try Network(spec: tinySpec, batch: 1, keepProbability: 0.5, seed: 7,
                              workspaceBudget: 1 << 13, convAlgorithm: algorithm)
        assertCoversEveryBackwardPath(net, file: file, line: line)
        let data = SyntheticData(seed: 107, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
        data.fill(images: net.images, labels: net.labels, step: 0, first: 0, count: 1, globalBatch: 2)
        for i in 0..<data.pixelsPerImage { net.images[i] *= 50 }
        let ctx = StepContext(step: 4, firstSample: 6, globalBatch: 8, training: true)
        print("[grad] tiny vgg11 \(algorithm.rawValue): layers run " +
              net.convAlgorithms.compactMap { $0?.rawValue }.joined(separator: " "))

        net.forward(context: ctx)
        let loss0 = net.loss(.crossEntropy)
        let base = branchPattern(net)
        for i in 0..<net.gradients.count { net.gradients[i] = .nan }
        net.backward(context: ctx)
        let analytic = net.gradients.toArray()
        XCTAssertFalse(analytic.contains { $0.isNaN }, "backward left gradients unwritten", file: file, line: line)

        func f() -> Double {
            net.forward(context: ctx)
            var total = 0.0
            for r in 0..<net.batch {
                let z = (0..<net.spec.classes).map { Double(net.logits[r * net.spec.classes + $0]) }
                let m = z.max()!
                total += log(z.reduce(0) { $0 + exp($1 - m) }) + m - z[Int(net.labels[r])]
            }
            return total / Double(net.batch)
        }
        XCTAssertEqual(f(), loss0, accuracy: 1e-6, file: file, line: line)
        let f0 = f()
        func difference(_ x: UnsafeMutablePointer<Float>, eps: Float) -> (value: Double, central: Bool)? {
            let x0 = x.pointee, xp = x0 + eps, xm = x0 - eps
            x.pointee = xp
            let fp = f()
            let samePlus = branchPattern(net) == base
            x.pointee = xm
            let fm = f()
            let sameMinus = branchPattern(net) == base
            x.pointee = x0
            switch (samePlus, sameMinus) {
            case (true, true): return ((fp - fm) / (Double(xp) - Double(xm)), true)
            case (true, false): return ((fp - f0) / (Double(xp) - Double(x0)), false)
            case (false, true): return ((f0 - fm) / (Double(x0) - Double(xm)), false)
            case (false, false): return nil
            }
        }
        var worst = 0.0
        for (li, layer) in net.layers.enumerated() where layer.parameterSlice.count > 0 {
            let s = layer.spec, slice = layer.parameterSlice
            let weights = sampleIndices(s.weightCount, 20, key: CounterRandom.key(99, UInt64(li), 1))
            let biases = sampleIndices(s.biasCount, 4, key: CounterRandom.key(99, UInt64(li), 2)).map { $0 + s.weightCount }
            var c = GradientComparison()
            var oneSided = 0, smallStep = 0
            for j in weights + biases {
                let x = net.parameters.base + slice.offset + j
                var d = difference(x, eps: 1e-3)
                if d == nil { d = difference(x, eps: 2.5e-4); smallStep += 1 }
                guard let (n, central) = d else { c.skipped += 1; continue }
                if !central { oneSided += 1 }
                c.add(numeric: n, analytic: Double(analytic[slice.offset + j]))
            }
            let algo = net.convAlgorithms[li]?.rawValue ?? "-"
            print("[grad] tiny vgg11 \(algorithm.rawValue) \(s.name) (\(algo)): \(c) (one-sided \(oneSided), h/4 \(smallStep))")
            worst = max(worst, c.relativeError)
            XCTAssertGreaterThanOrEqual(c.numeric.count, 10, s.name, file: file, line: line)
            XCTAssertGreaterThan(c.gradientNorm, 0, s.name, file: file, line: line)
            XCTAssertLessThan(c.relativeError, tolerance, "\(algorithm.rawValue) \(s.name)", file: file, line: line)
        }
        print("[grad] tiny vgg11 \(algorithm.rawValue): worst layer relative error \(String(format: "%.2e", worst))")
        XCTAssertEqual(f(), f0, file: file, line: line)
    }
}
