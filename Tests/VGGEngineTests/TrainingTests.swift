import Foundation
import XCTest
@testable import VGGEngine

final class TrainingTests: XCTestCase {
    /// Tiny VGG-11 memorises a fixed set of 8 synthetic samples (batch 8, so
    /// every step sees the whole set): the mean cross-entropy of the last 5 of
    /// 60 SGD steps is under half that of the first 5, and the trained network
    /// classifies the set.
    ///
    /// Operating point. With the engine's defaults — the notebook's Glorot
    /// init and images of sd 0.14 — this narrow VGG without batch norm loses
    /// ~1/√2 of its signal per conv: the pool5 features are ~0.01 and almost
    /// the same for every sample, next to fc biases of 0.1, and SGD sits on the
    /// label-prior plateau for a few hundred steps (measured: 32 samples, lr
    /// 0.01…0.2, 60 steps: 2.28 → 2.21, the entropy of the labels; breaking
    /// out after ~240 steps at lr 0.03, then unstable). So the test uses the
    /// standard fixes, which leave forward, backward and the optimizer as
    /// they are: He-uniform conv weights (the engine's Glorot values ×√2,
    /// √2 per ReLU layer) and images standardised to unit variance.
    func testTrainingReducesLoss() throws {
        let batch = 8, steps = 60
        let net = try Network(spec: tinySpec, batch: batch, keepProbability: 1.0, seed: 1)
        for layer in net.layers where layer is Conv2D {
            let w = net.parameters.base + layer.parameterSlice.offset
            for j in 0..<layer.spec.weightCount { w[j] *= Float(2).squareRoot() }
        }
        let data = SyntheticData(seed: 1, classes: tinySpec.classes, imageSize: tinySpec.imageSize, datasetSize: batch)
        let standardise = 1 / (0.1 * Float(2).squareRoot()) // prototype + noise: sd 0.1·√2
        let sgd = SGD(learningRate: 0.003, momentum: 0.9, weightDecay: 0)
        let v = FloatArena(count: net.parameters.count)
        var losses: [Double] = []
        for t in 0..<steps {
            data.fill(images: net.images, labels: net.labels, step: t, first: 0, count: batch, globalBatch: batch)
            for i in 0..<(batch * data.pixelsPerImage) { net.images[i] *= standardise }
            let ctx = StepContext(step: t, firstSample: 0, globalBatch: batch, training: true)
            net.forward(context: ctx)
            losses.append(net.loss(.crossEntropy))
            net.backward(context: ctx)
            sgd.step(parameters: net.parameters, gradients: net.gradients, velocity: v,
                     slice: ArenaSlice(offset: 0, count: net.parameters.count), gradientScale: 1)
        }
        let first = losses.prefix(5).reduce(0, +) / 5
        let last = losses.suffix(5).reduce(0, +) / 5
        print("[train] losses \(losses.map { String(format: "%.3f", $0) }.joined(separator: " "))")
        print("[train] first-5 mean \(first), last-5 mean \(last), ratio \(last / first)")
        XCTAssertTrue(losses.allSatisfy { $0.isFinite })
        XCTAssertEqual(first, log(10), accuracy: 0.5, "initial loss should be near ln 10")
        XCTAssertLessThan(last, 0.5 * first)

        // Inference on the same eight samples.
        net.forward(context: StepContext(step: steps, firstSample: 0, globalBatch: batch, training: false))
        let correct = zip(net.predictions(), (0..<batch).map { Int(net.labels[$0]) }).filter { $0 == $1 }.count
        print("[train] \(correct) of \(batch) training samples classified correctly")
        XCTAssertGreaterThanOrEqual(correct, 6)
    }

    /// Same seed: bitwise-identical parameters after several steps with
    /// dropout, in two networks built separately. Different seed: different.
    func testSameSeedIsBitwiseDeterministic() throws {
        func train(seed: UInt64) throws -> Network {
            let net = try Network(spec: tinySpec, batch: 4, keepProbability: 0.5, seed: seed)
            let data = SyntheticData(seed: seed, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
            let sgd = SGD(learningRate: 0.01, momentum: 0.9, weightDecay: 5e-4)
            let v = FloatArena(count: net.parameters.count)
            for t in 0..<3 { trainStep(net, data: data, step: t, optimizer: sgd, velocity: v) }
            return net
        }
        let a = try train(seed: 42), b = try train(seed: 42), c = try train(seed: 43)
        let ha = Checksum.of(a.parameters), hb = Checksum.of(b.parameters), hc = Checksum.of(c.parameters)
        print("[determinism] seed 42: \(Checksum.hex(ha)) \(Checksum.hex(hb)); seed 43: \(Checksum.hex(hc))")
        XCTAssertEqual(ha, hb)
        XCTAssertNotEqual(ha, hc)
        XCTAssertEqual(a.parameters.count, b.parameters.count)
        var differing = 0
        for i in 0..<a.parameters.count where a.parameters[i].bitPattern != b.parameters[i].bitPattern { differing += 1 }
        XCTAssertEqual(differing, 0, "elements that differ between two runs with one seed")
        var differentSeed = 0
        for i in 0..<a.parameters.count where a.parameters[i] != c.parameters[i] { differentSeed += 1 }
        XCTAssertGreaterThan(differentSeed, a.parameters.count / 2)
        // Training moved the parameters away from their initial values.
        let fresh = try Network(spec: tinySpec, batch: 1, seed: 42)
        XCTAssertNotEqual(Checksum.of(fresh.parameters), ha)
    }

    /// Backward overwrites the parameter gradients rather than adding to them,
    /// and reports every layer with parameters, last layer first.
    func testBackwardOverwritesGradientsAndReportsLayers() throws {
        let net = try Network(spec: tinySpec, batch: 2, seed: 5)
        let data = SyntheticData(seed: 5, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
        data.fill(images: net.images, labels: net.labels, step: 0, first: 0, count: 2, globalBatch: 2)
        let ctx = StepContext(step: 0, firstSample: 0, globalBatch: 2, training: true)
        net.forward(context: ctx)
        _ = net.loss(.crossEntropy)
        var ready: [Int] = []
        net.backward(context: ctx) { ready.append($0) }
        let first = net.gradients.toArray()
        net.forward(context: ctx)
        _ = net.loss(.crossEntropy)
        net.backward(context: ctx)
        let second = net.gradients.toArray()
        XCTAssertEqual(first.map(\.bitPattern), second.map(\.bitPattern))
        let withParameters = net.layers.indices.filter { net.layers[$0].parameterSlice.count > 0 }
        XCTAssertEqual(ready, withParameters.reversed())
        // The parameter slices tile the arena in layer order.
        var offset = 0
        for i in withParameters {
            XCTAssertEqual(net.layers[i].parameterSlice.offset, offset)
            offset += net.layers[i].parameterSlice.count
        }
        XCTAssertEqual(offset, net.parameters.count)
    }

    /// PyTorch's SGD: g = scale·grad + decay·w; v = μ·v + g; w −= lr·v.
    func testSGDStep() {
        let w = FloatArena(count: 3), g = FloatArena(count: 3), v = FloatArena(count: 3)
        for i in 0..<3 { w[i] = Float(i + 1); g[i] = Float(10 * (i + 1)); v[i] = 1 }
        let sgd = SGD(learningRate: 0.1, momentum: 0.5, weightDecay: 0.01)
        // Only elements 1 and 2.
        sgd.step(parameters: w, gradients: g, velocity: v, slice: ArenaSlice(offset: 1, count: 2), gradientScale: 0.25)
        XCTAssertEqual(w[0], 1)
        XCTAssertEqual(v[0], 1)
        for i in 1..<3 {
            let w0 = Float(i + 1), d = 0.25 * Float(10 * (i + 1)) + 0.01 * w0
            let nv = 0.5 * 1 + d
            XCTAssertEqual(v[i], nv, accuracy: 1e-6)
            XCTAssertEqual(w[i], w0 - 0.1 * nv, accuracy: 1e-6)
        }
    }

    func testChecksum() {
        let a = FloatArena(count: 1001), b = FloatArena(count: 1001)
        fillUniform(a.base, count: a.count, key: 71, scale: 1)
        b.copy(from: a)
        XCTAssertEqual(Checksum.of(a), Checksum.of(b))
        for i in [0, 500, 1000] {
            b[i] = Float(bitPattern: a[i].bitPattern ^ 1)
            XCTAssertNotEqual(Checksum.of(a), Checksum.of(b), "one-bit change at \(i)")
            b[i] = a[i]
        }
        // +0 and −0 are equal floats but different bits.
        a[3] = 0; b[3] = -0.0
        XCTAssertNotEqual(Checksum.of(a), Checksum.of(b))
        XCTAssertEqual(Checksum.hex(0x1f), "000000000000001f")
        // Pinned values, so that checksums in reports stay comparable across
        // versions (count 0, a tail shorter than four lanes, exact bits); the
        // values were also computed independently (a Python transcription).
        let fixed = FloatArena(count: 7)
        for i in 0..<7 { fixed[i] = Float(i) - 2.5 }
        print("[checksum] empty \(Checksum.hex(Checksum.of(fixed.base, count: 0))), seven \(Checksum.hex(Checksum.of(fixed)))")
        XCTAssertEqual(Checksum.of(fixed.base, count: 0), 0x300f_6d75_8fd1_f599)
        XCTAssertEqual(Checksum.of(fixed), 0x31b8_4c9f_8b5c_0244)
    }
}

final class DataAndDropoutTests: XCTestCase {
    /// A sample is a function of (seed, step, global sample index) only: it
    /// does not depend on which range of samples a call fills.
    func testSyntheticSampleIndependentOfRange() {
        for datasetSize in [nil, 5] as [Int?] {
            let data = SyntheticData(seed: 9, classes: 10, imageSize: 32, datasetSize: datasetSize)
            let px = data.pixelsPerImage
            let all = UnsafeMutablePointer<Float>.allocate(capacity: 4 * px)
            let part = UnsafeMutablePointer<Float>.allocate(capacity: 2 * px)
            let allLabels = UnsafeMutablePointer<Int32>.allocate(capacity: 4)
            let partLabels = UnsafeMutablePointer<Int32>.allocate(capacity: 2)
            defer { all.deallocate(); part.deallocate(); allLabels.deallocate(); partLabels.deallocate() }

            data.fill(images: all, labels: allLabels, step: 3, first: 0, count: 4, globalBatch: 4)
            data.fill(images: part, labels: partLabels, step: 3, first: 2, count: 2, globalBatch: 4)
            for j in 0..<2 {
                XCTAssertEqual(allLabels[2 + j], partLabels[j])
                XCTAssertEqual(allLabels[2 + j], data.label(step: 3, sample: 2 + j, globalBatch: 4))
                for p in 0..<px { XCTAssertEqual(all[(2 + j) * px + p].bitPattern, part[j * px + p].bitPattern) }
            }
            // Samples differ from each other, and a step differs from the next.
            XCTAssertNotEqual(all[0], all[px])
            data.fill(images: part, labels: partLabels, step: 4, first: 0, count: 2, globalBatch: 4)
            XCTAssertNotEqual(all[0], part[0])
            for j in 0..<4 { XCTAssertTrue((0..<10).contains(Int(allLabels[j]))) }

            if let size = datasetSize {
                // With a fixed dataset, sample i of step t is dataset item (t·B + i) mod size.
                data.fill(images: part, labels: partLabels, step: 0, first: (3 * 4 + 1) % size, count: 1, globalBatch: 4)
                for p in 0..<px { XCTAssertEqual(all[1 * px + p], part[p]) }
                XCTAssertEqual(allLabels[1], partLabels[0])
            }
        }
    }

    /// Pixels are prototype + noise, each uniform with sd 0.1: overall sd ≈ 0.14.
    func testSyntheticStatistics() {
        let data = SyntheticData(seed: 2, classes: 10, imageSize: 32)
        let n = 8, px = data.pixelsPerImage
        let images = UnsafeMutablePointer<Float>.allocate(capacity: n * px)
        let labels = UnsafeMutablePointer<Int32>.allocate(capacity: n)
        defer { images.deallocate(); labels.deallocate() }
        data.fill(images: images, labels: labels, step: 0, first: 0, count: n, globalBatch: n)
        var s = 0.0, s2 = 0.0
        for i in 0..<(n * px) { s += Double(images[i]); s2 += Double(images[i]) * Double(images[i]) }
        let mean = s / Double(n * px), sd = (s2 / Double(n * px) - mean * mean).squareRoot()
        print("[data] mean \(mean) sd \(sd)")
        XCTAssertEqual(mean, 0, accuracy: 0.01)
        XCTAssertEqual(sd, 0.1 * 2.0.squareRoot(), accuracy: 0.01)
    }

    /// Dropout masks depend on the global sample index: one network with batch
    /// 4 and two with batch 2 (first samples 0 and 2) draw the same masks and
    /// compute the same outputs for the same samples.
    func testDropoutMaskDependsOnGlobalSampleIndex() throws {
        let seed: UInt64 = 17, step = 2, globalBatch = 4
        let data = SyntheticData(seed: seed, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
        let whole = try Network(spec: tinySpec, batch: 4, keepProbability: 0.5, seed: seed)
        let halves = [try Network(spec: tinySpec, batch: 2, keepProbability: 0.5, seed: seed),
                      try Network(spec: tinySpec, batch: 2, keepProbability: 0.5, seed: seed)]
        data.fill(images: whole.images, labels: whole.labels, step: step, first: 0, count: 4, globalBatch: globalBatch)
        whole.forward(context: StepContext(step: step, firstSample: 0, globalBatch: globalBatch, training: true))
        for (h, net) in halves.enumerated() {
            data.fill(images: net.images, labels: net.labels, step: step, first: 2 * h, count: 2, globalBatch: globalBatch)
            net.forward(context: StepContext(step: step, firstSample: 2 * h, globalBatch: globalBatch, training: true))
        }
        var maxDiff: Float = 0
        var dropoutLayers = 0
        for (i, layer) in whole.layers.enumerated() {
            guard let d = layer as? Dropout else { continue }
            dropoutLayers += 1
            let f = d.features
            var dropped = 0
            for (h, net) in halves.enumerated() {
                let dh = net.layers[i] as! Dropout
                for e in 0..<(2 * f) {
                    let m = d.mask[2 * h * f + e]
                    XCTAssertEqual(m, dh.mask[e], "\(layer.spec.name) mask, sample \(2 * h + e / f)")
                    if m == 0 { dropped += 1 }
                    let y = whole.activations[i][2 * h * f + e], yh = net.activations[i][e]
                    if m == 0 { XCTAssertEqual(yh, 0) }
                    maxDiff = max(maxDiff, abs(y - yh))
                }
            }
            XCTAssertTrue(dropped > f && dropped < 3 * f, "\(layer.spec.name) dropped \(dropped) of \(4 * f)")
        }
        XCTAssertEqual(dropoutLayers, 2)
        print("[dropout] max |difference| of dropout outputs, batch 4 vs 2+2: \(maxDiff)")
        XCTAssertLessThan(maxDiff, 1e-5)

        // Masks differ between samples and between steps.
        let d6 = whole.layers.first { $0 is Dropout } as! Dropout
        XCTAssertFalse((0..<d6.features).allSatisfy { d6.mask[$0] == d6.mask[d6.features + $0] })
        let before = Array(UnsafeBufferPointer(start: d6.mask, count: d6.features))
        whole.forward(context: StepContext(step: step + 1, firstSample: 0, globalBatch: globalBatch, training: true))
        XCTAssertNotEqual(before, Array(UnsafeBufferPointer(start: d6.mask, count: d6.features)))
    }
}
