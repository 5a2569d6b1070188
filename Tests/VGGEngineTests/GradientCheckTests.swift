import Foundation
import XCTest
@testable import VGGEngine

/// Finite-difference checks of every backward pass.
///
/// Layer level: each layer gets hand-made buffers (`LayerHarness`) and the
/// objective L = Σ dy·y with a fixed random dy; every parameter and every
/// input element is perturbed. Conv, linear, pooling and dropout are linear in
/// any one input or parameter as long as no ReLU and no max-pool window
/// changes branch, so a central difference within one branch is exact but for
/// float rounding. Perturbations that do change a branch (seen by comparing the
/// ReLU on/off pattern and the pooling argmax at x±h with those at x) are
/// skipped and counted. What remains is rounding: y carries ~1e-7 relative
/// error, L sums a few hundred of them in Double, and the difference is divided
/// by 2h = 2e-3, which leaves an error of order 1e-4 of a gradient of order 1.
/// The tolerance, relative error ||g_num − g_ana|| / (||g_num|| + ||g_ana||)
/// < 2e-3, leaves a wide margin over that (measured: 1e-5…4e-5, and exactly 0
/// for pooling and dropout, whose outputs are copies or exact multiples of
/// their inputs); an indexing or transposition bug gives errors of order 1.
///
/// Network level, see `testWholeNetworkGradients`.
final class GradientCheckTests: XCTestCase {
    static let layerEps: Float = 1e-3
    static let layerTolerance = 2e-3

    private func assertGradients(_ h: LayerHarness, _ what: String, checkParameters: Bool = true,
                                 file: StaticString = #filePath, line: UInt = #line) {
        let (p, x) = h.check(eps: Self.layerEps)
        print("[grad] \(what) parameters: \(p)")
        print("[grad] \(what) inputs:     \(x)")
        if checkParameters {
            XCTAssertEqual(p.numeric.count + p.skipped, h.parameters.count, file: file, line: line)
            XCTAssertGreaterThan(p.numeric.count, h.parameters.count * 3 / 4, "too many skipped", file: file, line: line)
            XCTAssertGreaterThan(p.gradientNorm, 0, file: file, line: line)
            XCTAssertLessThan(p.relativeError, Self.layerTolerance, "\(what) parameter gradients", file: file, line: line)
        }
        XCTAssertGreaterThan(x.numeric.count, h.input.count * 3 / 4, "too many skipped", file: file, line: line)
        XCTAssertGreaterThan(x.gradientNorm, 0, file: file, line: line)
        XCTAssertLessThan(x.relativeError, Self.layerTolerance, "\(what) input gradients", file: file, line: line)
        XCTAssertFalse(p.analytic.contains { $0.isNaN } || x.analytic.contains { $0.isNaN }, "unwritten gradient", file: file, line: line)
    }

    // MARK: - Forward against direct formulas

    /// Conv2D's forward against a direct six-loop convolution in Double, so
    /// that the layout ([kh][kw][C][K] weights, NHWC, SAME zero padding) is
    /// checked, not only the consistency of backward with forward.
    func testConv2DForwardMatchesDirectConvolution() {
        let (n, h, w, c, k) = (2, 5, 6, 3, 4)
        for budget in [1 << 20, 7 * 9 * c] {
            let hs = LayerHarness(spec: .conv(name: "c", inChannels: c, outChannels: k, height: h, width: w),
                                  batch: n, key: 11, workspaceBudget: budget)
            hs.forward()
            var maxErr = 0.0
            for b in 0..<n { for y in 0..<h { for x in 0..<w { for o in 0..<k {
                var s = Double(hs.parameters[9 * c * k + o])
                for kh in 0..<3 { for kw in 0..<3 {
                    let iy = y + kh - 1, ix = x + kw - 1
                    if iy < 0 || iy >= h || ix < 0 || ix >= w { continue }
                    for ci in 0..<c {
                        s += Double(hs.input[((b * h + iy) * w + ix) * c + ci]) * Double(hs.parameters[((kh * 3 + kw) * c + ci) * k + o])
                    }
                } }
                let got = Double(hs.output[((b * h + y) * w + x) * k + o])
                maxErr = max(maxErr, abs(got - max(s, 0)))
            } } } }
            print("[fwd] conv budget \(budget): max abs error vs direct \(maxErr)")
            XCTAssertLessThan(maxErr, 1e-5)
        }
    }

    func testLinearAndPoolForwardMatchDirectFormulas() {
        let lin = LayerHarness(spec: .linear(name: "l", inFeatures: 7, outFeatures: 5, relu: false), batch: 3, key: 12)
        lin.forward()
        for b in 0..<3 { for o in 0..<5 {
            var s = Double(lin.parameters[35 + o])
            for i in 0..<7 { s += Double(lin.input[b * 7 + i]) * Double(lin.parameters[i * 5 + o]) }
            XCTAssertEqual(Double(lin.output[b * 5 + o]), s, accuracy: 1e-5)
        } }

        let pool = LayerHarness(spec: .maxPool(name: "p", channels: 3, height: 4, width: 6), batch: 2, key: 13)
        pool.forward()
        for b in 0..<2 { for i in 0..<2 { for j in 0..<3 { for ch in 0..<3 {
            var m = -Float.infinity
            for dy in 0..<2 { for dx in 0..<2 { m = max(m, pool.input[((b * 4 + 2 * i + dy) * 6 + 2 * j + dx) * 3 + ch]) } }
            XCTAssertEqual(pool.output[((b * 2 + i) * 3 + j) * 3 + ch], m)
        } } } }
    }

    // MARK: - Layer gradients

    /// 3×3 conv with fused ReLU on a 5×6 image (non-square, so rows and columns
    /// cannot be confused), batch 2; once with the whole batch in one im2col
    /// chunk, once with chunks of 7 output pixels that straddle rows and images.
    func testConv2DGradients() {
        let spec = LayerSpec.conv(name: "c", inChannels: 3, outChannels: 4, height: 5, width: 6)
        assertGradients(LayerHarness(spec: spec, batch: 2, key: 21), "conv 3->4 5x6 one chunk")
        assertGradients(LayerHarness(spec: spec, batch: 2, key: 21, workspaceBudget: 7 * 27), "conv 3->4 5x6 chunks of 7")
        let wide = LayerSpec.conv(name: "c", inChannels: 5, outChannels: 3, height: 4, width: 4)
        assertGradients(LayerHarness(spec: wide, batch: 3, key: 22), "conv 5->3 4x4")
    }

    /// The chunked conv computes the same gradients as the unchunked one.
    func testConv2DChunkingDoesNotChangeResults() {
        let spec = LayerSpec.conv(name: "c", inChannels: 3, outChannels: 4, height: 5, width: 6)
        let whole = LayerHarness(spec: spec, batch: 2, key: 23)
        let chunked = LayerHarness(spec: spec, batch: 2, key: 23, workspaceBudget: 7 * 27)
        XCTAssertEqual(chunked.conv.chunkRows, 7)
        whole.analytic()
        chunked.analytic()
        for i in 0..<whole.output.count { XCTAssertEqual(whole.output[i], chunked.output[i], accuracy: 1e-6) }
        for i in 0..<whole.gradients.count { XCTAssertEqual(whole.gradients[i], chunked.gradients[i], accuracy: 1e-5) }
        for i in 0..<whole.inputGrad.count { XCTAssertEqual(whole.inputGrad[i], chunked.inputGrad[i], accuracy: 1e-5) }
    }

    func testMaxPool2DGradients() {
        let spec = LayerSpec.maxPool(name: "p", channels: 3, height: 4, width: 6)
        assertGradients(LayerHarness(spec: spec, batch: 2, key: 31), "maxpool 4x6x3", checkParameters: false)
    }

    /// A pool after a convolution keeps only its argmax (one byte per
    /// output) and applies that convolution's ReLU backward itself: on
    /// post-ReLU inputs (≥ 0, many exactly 0) its input gradient is, bit for
    /// bit, the plain pool's followed by ReLU's backward on the inputs; the
    /// argmax is the first of the four largest inputs; and a pool without its
    /// argmax (inference) gives the same output.
    func testMaxPoolAppliesTheConvolutionsReLUBackward() {
        let c = 11, h = 6, w = 8, batch = 2
        let spec = LayerSpec.maxPool(name: "p", channels: c, height: h, width: w)
        let nIn = batch * h * w * c, nOut = batch * (h / 2) * (w / 2) * c
        let key = CounterRandom.key(61, 1)
        // Post-ReLU values on a coarse grid: ties and zeros in many windows.
        let x = (0..<nIn).map { max(0, (CounterRandom.symmetric(key, $0) * 4).rounded()) }
        let dy = (0..<nOut).map { CounterRandom.symmetric(CounterRandom.key(61, 2), $0) }
        func run(appliesReLU: Bool, keepsArgmax: Bool = true) -> (y: [Float], dx: [Float], argmax: [UInt8]) {
            let input = FloatArena(count: nIn), output = FloatArena(count: nOut)
            let inputGrad = FloatArena(count: nIn), outputGrad = FloatArena(count: nOut)
            for i in 0..<nIn { input[i] = x[i]; inputGrad[i] = .nan }
            for i in 0..<nOut { outputGrad[i] = dy[i] }
            let pool = MaxPool2D(spec: spec, io: LayerBuffers(input: input.base, output: output.base, inputGrad: inputGrad.base,
                                                              outputGrad: outputGrad.base),
                                 batch: batch, appliesReLU: appliesReLU, keepsArgmax: keepsArgmax)
            let ctx = StepContext(step: 0, firstSample: 0, globalBatch: batch, training: true)
            pool.forward(batch: batch, context: ctx)
            guard keepsArgmax else { return (output.toArray(), [], []) }
            pool.backward(batch: batch, context: ctx)
            return (output.toArray(), inputGrad.toArray(), Array(UnsafeBufferPointer(start: pool.argmax, count: nOut)))
        }
        let plain = run(appliesReLU: false), fused = run(appliesReLU: true)
        let expected = (0..<nIn).map { x[$0] > 0 ? plain.dx[$0] : 0 }
        XCTAssertEqual(fused.dx.map(\.bitPattern), expected.map(\.bitPattern))
        XCTAssertEqual(fused.y, plain.y)
        XCTAssertEqual(run(appliesReLU: false, keepsArgmax: false).y, plain.y)
        XCTAssertTrue(fused.dx.contains { $0 != 0 })
        var zeroed = 0
        for n in 0..<batch {
            for i in 0..<(h / 2) {
                for j in 0..<(w / 2) {
                    for k in 0..<c {
                        let o = ((n * (h / 2) + i) * (w / 2) + j) * c + k
                        let window = [(0, 0), (0, 1), (1, 0), (1, 1)].map { x[((n * h + 2 * i + $0.0) * w + 2 * j + $0.1) * c + k] }
                        let best = window.max()!
                        XCTAssertEqual(Int(fused.argmax[o]), window.firstIndex(of: best)!)
                        XCTAssertEqual(fused.y[o], best)
                        if best == 0 && dy[o] != 0 { zeroed += 1 }
                    }
                }
            }
        }
        XCTAssertGreaterThan(zeroed, 0, "some windows are all ReLU-inactive")
    }

    func testLinearGradients() {
        let relu = LayerSpec.linear(name: "l", inFeatures: 7, outFeatures: 5, relu: true)
        assertGradients(LayerHarness(spec: relu, batch: 3, key: 41), "linear 7->5 relu")
        let plain = LayerSpec.linear(name: "l", inFeatures: 7, outFeatures: 5, relu: false)
        assertGradients(LayerHarness(spec: plain, batch: 3, key: 42), "linear 7->5")
    }

    /// Dropout in training mode: the mask is a function of (seed, layer, step,
    /// sample), so repeated forwards with one context reuse one mask.
    func testDropoutGradients() {
        let spec = LayerSpec.dropout(name: "d", features: 16)
        let h = LayerHarness(spec: spec, batch: 3, key: 51, keepProbability: 0.5)
        h.forward()
        let mask = (h.layer as! Dropout).mask
        var kept = 0
        for i in 0..<h.outputCount {
            XCTAssertTrue(mask[i] == 0 || mask[i] == 2, "mask value \(mask[i])")
            XCTAssertEqual(h.output[i], h.input[i] * mask[i])
            if mask[i] != 0 { kept += 1 }
        }
        XCTAssertTrue(kept > 0 && kept < h.outputCount, "mask keeps \(kept) of \(h.outputCount)")
        assertGradients(h, "dropout keep 0.5", checkParameters: false)

        // Inference, and keep probability 1, are the identity.
        h.context.training = false
        h.forward()
        for i in 0..<h.outputCount { XCTAssertEqual(h.output[i], h.input[i]) }
        h.context.training = true
        (h.layer as! Dropout).keepProbability = 1
        h.forward()
        for i in 0..<h.outputCount { XCTAssertEqual(h.output[i], h.input[i]) }
    }

    // MARK: - Objectives

    /// Softmax cross-entropy (mean over the batch) and L2 (Σz²/2) against
    /// central differences in the logits. Both are smooth; for cross-entropy
    /// the truncation error is O(h²·|f'''|) ~ 1e-5 with h = 1e-2 and float
    /// rounding of the loss (~2e-7) over 2h adds ~1e-5, against gradients of
    /// order 0.1: tolerance 1e-3. L2's central difference is exact up to
    /// rounding.
    func testObjectiveGradients() {
        let (batch, classes) = (3, 5)
        let logits = FloatArena(count: batch * classes)
        let grad = FloatArena(count: batch * classes)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: batch)
        defer { labels.deallocate() }
        labels[0] = 0; labels[1] = 4; labels[2] = 2
        fillUniform(logits.base, count: logits.count, key: 61, scale: 3)

        for objective in [Objective.crossEntropy, .l2] {
            let loss = objective.lossAndGradient(logits: logits.base, labels: labels, batch: batch, classes: classes, grad: grad.base)
            // Loss value against a direct Double computation.
            var reference = 0.0
            for r in 0..<batch {
                let z = (0..<classes).map { Double(logits[r * classes + $0]) }
                switch objective {
                case .crossEntropy:
                    reference += (log(z.map { exp($0) }.reduce(0, +)) - z[Int(labels[r])]) / Double(batch)
                case .l2:
                    reference += z.map { $0 * $0 / 2 }.reduce(0, +)
                }
            }
            XCTAssertEqual(loss, reference, accuracy: 1e-5 * abs(reference))
            var c = GradientComparison()
            let scratch = FloatArena(count: batch * classes)
            for i in 0..<logits.count {
                let (n, _) = centralDifference(logits.base, i, eps: 1e-2) {
                    objective.lossAndGradient(logits: logits.base, labels: labels, batch: batch, classes: classes, grad: scratch.base)
                }
                c.add(numeric: n, analytic: Double(grad[i]))
            }
            print("[grad] \(objective.rawValue) logits: \(c)")
            XCTAssertLessThan(c.relativeError, 1e-3, "\(objective)")
        }

        // Cross-entropy gradient rows sum to zero (softmax minus one-hot, /N).
        _ = Objective.crossEntropy.lossAndGradient(logits: logits.base, labels: labels, batch: batch, classes: classes, grad: grad.base)
        for r in 0..<batch {
            let s = (0..<classes).reduce(0.0) { $0 + Double(grad[r * classes + $1]) }
            XCTAssertEqual(s, 0, accuracy: 1e-6)
        }
    }

    // MARK: - Whole network

    /// Tiny VGG-11 (32×32, widths /16, 10 classes), batch 2, cross-entropy
    /// through `Network.loss`, dropout 0.5 in training mode (one fixed mask,
    /// since the step context is fixed). For every layer with parameters, 45
    /// weights and 5 biases (all of them where there are fewer) are perturbed.
    ///
    /// Two things limit a float32 finite difference here, and the test is set
    /// up for both:
    ///
    /// - Rounding. A single weight moves the loss by only |g|·h with |g| ~
    ///   1e-3…1e-2, while `Network.loss` rounds each sample's loss to float
    ///   (ulp 2.4e-7 near 2.3). The numeric side therefore evaluates the same
    ///   cross-entropy in Double on the engine's float logits (it must agree
    ///   with `Network.loss` to 1e-6; the engine's loss gradient itself is
    ///   checked in `testObjectiveGradients`). The analytic side is the
    ///   engine's: `Network.loss` seeding `Network.backward`. The images
    ///   are therefore scaled by 50 (synthetic pixels have sd 0.14; without
    ///   batch norm, Glorot init roughly halves the variance per conv, so at
    ///   the original scale the deep activations and conv gradients are tiny).
    ///   Conv biases are 0, so the convolutional part is positively
    ///   homogeneous: the scale only moves the operating point.
    /// - Kinks. A weight of conv1 moves ~15 000 ReLUs and pooling choices
    ///   downstream, and an fc unit whose pre-activation happens to sit within
    ///   h of zero corrupts the central difference of every parameter (seen:
    ///   an fc7 pre-activation of −5e-7). So the branch pattern of every ReLU
    ///   and pooling window is recorded at x−h, x and x+h: with no change the
    ///   central difference is used; with a change on one side only, the
    ///   one-sided difference on the other side (within one branch the logits
    ///   are affine in the parameter, so its truncation error is only the
    ///   softmax curvature, O(h) ≪ 1e-3 relative); with changes on both sides
    ///   h is quartered once (1e-3 → 2.5e-4), and then the entry is dropped.
    ///
    /// What remains is rounding, measured at 1e-3…4e-3 per layer over five
    /// seeds; tolerance: relative error < 1e-2 per layer, with at least 10
    /// entries compared per layer. A wrong index, layout or buffer hand-off
    /// gives errors of order 1.
    func testWholeNetworkGradients() throws {
        let net = try Network(spec: tinySpec, batch: 2, keepProbability: 0.5, seed: 7)
        assertCoversEveryBackwardPath(net)
        let data = SyntheticData(seed: 107, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
        data.fill(images: net.images, labels: net.labels, step: 0, first: 0, count: 2, globalBatch: 2)
        for i in 0..<(2 * data.pixelsPerImage) { net.images[i] *= 50 }
        let ctx = StepContext(step: 4, firstSample: 6, globalBatch: 8, training: true)

        net.forward(context: ctx)
        let loss0 = net.loss(.crossEntropy)
        let base = branchPattern(net)
        for i in 0..<net.gradients.count { net.gradients[i] = .nan }
        net.backward(context: ctx)
        let analytic = net.gradients.toArray()
        XCTAssertFalse(analytic.contains { $0.isNaN }, "backward left gradients unwritten")
        print("[grad] tiny vgg11 loss \(loss0)")

        /// The same cross-entropy, evaluated in Double on the logits.
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
        XCTAssertEqual(f(), loss0, accuracy: 1e-6)
        let f0 = f()
        /// Derivative over an interval within one branch, or nil.
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
        for (li, layer) in net.layers.enumerated() where layer.parameterSlice.count > 0 {
            let s = layer.spec, slice = layer.parameterSlice
            let weights = sampleIndices(s.weightCount, 45, key: CounterRandom.key(99, UInt64(li), 1))
            let biases = sampleIndices(s.biasCount, 5, key: CounterRandom.key(99, UInt64(li), 2)).map { $0 + s.weightCount }
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
            print("[grad] tiny vgg11 \(s.name): \(c) (one-sided \(oneSided), h/4 \(smallStep))")
            XCTAssertGreaterThanOrEqual(c.numeric.count, 10, s.name)
            XCTAssertGreaterThan(c.gradientNorm, 0, s.name)
            XCTAssertLessThan(c.relativeError, 1e-2, s.name)
        }
        // Every perturbation was undone.
        XCTAssertEqual(f(), f0)
    }
}

/// The whole-network checks run the training network's backward paths: a
/// convolution that leaves its ReLU to the pool after it (whose output buffer
/// is reused), one that applies its own, and a first convolution that forms
/// no input gradient.
func assertCoversEveryBackwardPath(_ net: Network, file: StaticString = #filePath, line: UInt = #line) {
    let convs = net.layers.compactMap { $0 as? Conv2D }
    XCTAssertEqual(net.purpose, .training, file: file, line: line)
    XCTAssertTrue(convs.contains { $0.reluAppliedByPool }, file: file, line: line)
    XCTAssertTrue(convs.contains { !$0.reluAppliedByPool }, file: file, line: line)
    XCTAssertNil(convs.first?.io.inputGrad, file: file, line: line)
    XCTAssertTrue(net.layers.allSatisfy { ($0 as? MaxPool2D)?.appliesReLU ?? true }, file: file, line: line)
}
