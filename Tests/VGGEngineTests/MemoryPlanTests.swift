@testable import VGGEngine
import Vocabulary
import XCTest

/// `MemoryPlan`: the byte totals against the arithmetic of the layer shapes,
/// the arena's lifetimes (no two live buffers share memory; what backward
/// reads is alive), the reuse it reaches on VGG-16, and `largestBatch`.
final class MemoryPlanTests: XCTestCase {
    let vgg16 = NetworkSpec(model: .vgg16, imageSize: 224, classes: 1000)

    /// Floats per image of VGG-16's largest outputs (conv1_1, conv1_2: 224·224·64).
    let largest = 224 * 224 * 64

    func testTotalsAgainstTheLayerShapes() {
        let batch = 32
        let plan = MemoryPlan(spec: vgg16, batch: batch, purpose: .training, optimizerState: true, convAlgorithm: .im2col)
        let t = plan.total
        XCTAssertEqual(vgg16.parameterCount, 138_357_544)
        XCTAssertEqual(t.parameters, 4 * 138_357_544)
        XCTAssertEqual(t.gradients, 4 * 138_357_544)
        XCTAssertEqual(t.optimizerState, 4 * 138_357_544)
        // Masks: one byte per pool output, four per dropout unit.
        let poolOutputs = 112 * 112 * 64 + 56 * 56 * 128 + 28 * 28 * 256 + 14 * 14 * 512 + 7 * 7 * 512
        XCTAssertEqual(t.masks, batch * poolOutputs + batch * 2 * 4096 * 4)
        // Every output once and, in training, its gradient once, before reuse:
        // 15,095,272 floats per image of outputs.
        XCTAssertEqual(vgg16.layers.reduce(0) { $0 + $1.outputElementsPerImage }, 15_095_272)
        XCTAssertEqual(plan.activationBytesWithoutReuse, 2 * 4 * batch * 15_095_272)
        XCTAssertEqual(t.activations, plan.arenaFloats * 4 + batch * (224 * 224 * 3 * 4 + 4))
        // im2col: the 32 MiB column budget (no Winograd filter).
        let widest = plan.layers.map(\.workspace).max() ?? 0
        XCTAssertLessThanOrEqual(widest, 4 * Network.defaultWorkspaceFloats)
        XCTAssertGreaterThan(widest, 4 * (Network.defaultWorkspaceFloats - 9 * 512))
        XCTAssertEqual(t.workspace, ConvWorkspace.bytes(specs: vgg16.layers, batch: batch, budget: Network.defaultWorkspaceFloats,
                                                        algorithm: .im2col))
        XCTAssertEqual(t.sum, t.parameters + t.gradients + t.optimizerState + t.activations + t.workspace + t.masks)

        let fwd = MemoryPlan(spec: vgg16, batch: batch, purpose: .inference, optimizerState: true)
        XCTAssertEqual(fwd.total.gradients, 0)
        XCTAssertEqual(fwd.total.optimizerState, 0, "no optimizer without backward")
        XCTAssertEqual(fwd.total.masks, batch * 2 * 4096 * 4, "no argmax kept for inference")
    }

    /// The workspace bytes the plan counts are those the workspace allocates.
    func testWorkspaceBytesAreWhatTheWorkspaceAllocates() {
        for algorithm in ConvAlgorithm.allCases {
            for (spec, batch) in [(tinySpec, 3), (NetworkSpec(model: .vgg16, imageSize: 64, classes: 10, widthDivisor: 8), 2)] {
                let ws = ConvWorkspace(specs: spec.layers, batch: batch, budget: 1 << 14, algorithm: algorithm)
                XCTAssertEqual(ConvWorkspace.bytes(specs: spec.layers, batch: batch, budget: 1 << 14, algorithm: algorithm),
                               ws.bytes, algorithm.rawValue)
            }
        }
    }

    /// Training on VGG-16: the largest set of buffers alive at once is at
    /// conv1_2's backward (conv1_1's output, the gradient of conv1_2's output
    /// and the one it writes, each 224·224·64 per image, and the logits, which
    /// live to the end of the step); the arena is exactly that: every other
    /// buffer lies over ones that are dead by then. Inference: two buffers of
    /// the largest output.
    func testVGG16ArenaReachesTheLargestLiveSet() {
        for batch in [1, 16, 32] {
            let train = MemoryPlan(spec: vgg16, batch: batch, purpose: .training)
            let logits = (batch * 1000 + 15) / 16 * 16
            XCTAssertEqual(train.arenaFloats, 3 * batch * largest + logits, "batch \(batch)")
            XCTAssertEqual(train.arenaFloats, peakLiveFloats(train), "batch \(batch)")
            let fwd = MemoryPlan(spec: vgg16, batch: batch, purpose: .inference)
            XCTAssertEqual(fwd.arenaFloats, 2 * batch * largest, "batch \(batch)")
        }
    }

    /// For every model and purpose: buffers alive at the same step never
    /// share memory, all lie inside the arena, and each lives at least as long
    /// as its readers need.
    func testLiveBuffersNeverShareMemory() {
        for model in VGGModel.allCases {
            for purpose in NetworkPurpose.allCases {
                for spec in [NetworkSpec(model: model, imageSize: 64, classes: 10, widthDivisor: 4), tinySpec,
                             NetworkSpec(model: model, imageSize: 224, classes: 1000)] {
                    let plan = MemoryPlan(spec: spec, batch: 3, purpose: purpose)
                    let b = plan.buffers
                    for x in b {
                        XCTAssertLessThanOrEqual(x.offset + x.floats, plan.arenaFloats)
                        XCTAssertGreaterThanOrEqual(x.floats, 3 * spec.layers[x.layer].outputElementsPerImage)
                        XCTAssertEqual(x.offset % 16, 0, "64-byte aligned")
                    }
                    for i in b.indices {
                        for j in b.indices where j > i && b[i].overlapsInTime(b[j]) {
                            let disjoint = b[i].offset + b[i].floats <= b[j].offset || b[j].offset + b[j].floats <= b[i].offset
                            XCTAssertTrue(disjoint, "\(model) \(purpose): \(b[i]) and \(b[j])")
                        }
                    }
                    assertReadersAlive(plan)
                    XCTAssertLessThan(plan.arenaFloats * 4, plan.activationBytesWithoutReuse, "\(model) \(purpose): reuse")
                }
            }
        }
    }

    /// In training the output of a convolution that feeds a pool dies at the
    /// pool's forward; every other conv output lives to its own backward.
    func testPoolFedConvolutionOutputsDieAtThePool() {
        let plan = MemoryPlan(spec: vgg16, batch: 2, purpose: .training)
        let n = vgg16.layers.count
        var poolFed: [String] = []
        for (i, s) in vgg16.layers.enumerated() {
            guard case .conv = s else { continue }
            let out = plan.buffers.first { $0.layer == i && $0.role == .output }!
            if case .maxPool = vgg16.layers[i + 1] {
                poolFed.append(s.name)
                XCTAssertEqual(out.last, i + 1, s.name)
            } else {
                XCTAssertEqual(out.last, 2 * n - i, s.name)
            }
        }
        XCTAssertEqual(poolFed, ["conv1_2", "conv2_2", "conv3_3", "conv4_3", "conv5_3"])
        // No gradient of the images.
        XCTAssertNil(plan.buffers.first { $0.layer == -1 })
        XCTAssertEqual(plan.buffers.filter { $0.role == .outputGradient }.count, n)
    }

    func testLargestBatchThatFits() throws {
        for (mode, optimizer) in [(NetworkPurpose.training, true), (.training, false), (.inference, false)] {
            func need(_ b: Int) -> Int {
                MemoryPlan(spec: vgg16, batch: b, purpose: mode, optimizerState: optimizer, convAlgorithm: .auto).total.sum
            }
            for b in [1, 7, 32] {
                XCTAssertEqual(MemoryPlan.largestBatch(fitting: need(b), spec: vgg16, purpose: mode, optimizerState: optimizer,
                                                       convAlgorithm: .auto), b, "\(mode) exact fit of \(b)")
                XCTAssertEqual(MemoryPlan.largestBatch(fitting: need(b + 1) - 1, spec: vgg16, purpose: mode,
                                                       optimizerState: optimizer, convAlgorithm: .auto), b,
                               "\(mode) one byte short of \(b + 1)")
            }
            XCTAssertNil(MemoryPlan.largestBatch(fitting: need(1) - 1, spec: vgg16, purpose: mode, optimizerState: optimizer,
                                                 convAlgorithm: .auto))
        }
    }

    /// The network allocates the plan's arena and points its layers into it.
    func testNetworkUsesThePlan() throws {
        for purpose in NetworkPurpose.allCases {
            let net = try Network(spec: tinySpec, batch: 2, purpose: purpose, convAlgorithm: .winograd4)
            XCTAssertEqual(net.memory, MemoryPlan(spec: tinySpec, batch: 2, purpose: purpose, convAlgorithm: .winograd4))
            XCTAssertEqual(net.activationBytes, net.memory.arenaFloats * 4 + net.convWorkspace.bytes)
            XCTAssertEqual(net.memory.workspaceBytes, net.convWorkspace.bytes)
            for (i, layer) in net.layers.enumerated() {
                if let conv = layer as? Conv2D {
                    let poolNext: Bool
                    if case .maxPool = tinySpec.layers[i + 1] { poolNext = true } else { poolNext = false }
                    XCTAssertEqual(conv.reluAppliedByPool, purpose == .training && poolNext, layer.spec.name)
                }
                if let pool = layer as? MaxPool2D {
                    XCTAssertEqual(pool.appliesReLU, purpose == .training)
                    XCTAssertEqual(pool.keepsArgmax, purpose == .training)
                }
            }
        }
    }

    /// An inference network's forward gives the training network's logits, bit for bit.
    func testInferenceForwardMatchesTraining() throws {
        let data = SyntheticData(seed: 5, classes: tinySpec.classes, imageSize: tinySpec.imageSize)
        let ctx = StepContext(step: 0, firstSample: 0, globalBatch: 3, training: false)
        var logits: [[Float]] = []
        for purpose in NetworkPurpose.allCases {
            let net = try Network(spec: tinySpec, batch: 3, purpose: purpose, seed: 9, convAlgorithm: .auto)
            data.fill(images: net.images, labels: net.labels, step: 0, first: 0, count: 3, globalBatch: 3)
            net.forward(context: ctx)
            logits.append(Array(UnsafeBufferPointer(start: net.logits, count: 3 * tinySpec.classes)))
        }
        XCTAssertEqual(logits[0], logits[1])
        XCTAssertTrue(logits[0].contains { $0 != 0 })
    }

    // MARK: - Helpers

    /// The most floats alive at one step.
    func peakLiveFloats(_ plan: MemoryPlan) -> Int {
        (0...plan.endOfStep).map { t in
            plan.buffers.filter { $0.first <= t && t <= $0.last }.reduce(0) { $0 + $1.floats }
        }.max() ?? 0
    }

    /// Every buffer a layer reads at its forward (time i) or backward
    /// (time 2L − i) is alive then.
    func assertReadersAlive(_ plan: MemoryPlan, file: StaticString = #filePath, line: UInt = #line) {
        let specs = plan.spec.layers, n = specs.count
        func buffer(_ role: MemoryPlan.Buffer.Role, _ i: Int) -> MemoryPlan.Buffer? {
            plan.buffers.first { $0.layer == i && $0.role == role }
        }
        func alive(_ b: MemoryPlan.Buffer?, at t: Int, _ what: String) {
            guard let b else { return XCTFail("\(what): no buffer", file: file, line: line) }
            XCTAssertTrue(b.first <= t && t <= b.last, "\(what) at \(t): \(b)", file: file, line: line)
        }
        for (i, s) in specs.enumerated() {
            if i > 0 { alive(buffer(.output, i - 1), at: i, "\(s.name) forward input") }
            alive(buffer(.output, i), at: i, "\(s.name) forward output")
            guard plan.purpose == .training else { continue }
            let t = 2 * n - i
            alive(buffer(.outputGradient, i), at: t, "\(s.name) output gradient")
            if i > 0 { alive(buffer(.outputGradient, i - 1), at: t, "\(s.name) input gradient") }
            switch s {
            case .conv:
                if i > 0 { alive(buffer(.output, i - 1), at: t, "\(s.name) backward input") }
                if case .maxPool = specs[i + 1] {} else { alive(buffer(.output, i), at: t, "\(s.name) backward output") }
            case let .linear(_, _, _, relu):
                alive(buffer(.output, i - 1), at: t, "\(s.name) backward input")
                if relu { alive(buffer(.output, i), at: t, "\(s.name) backward output") }
            case .maxPool:
                alive(buffer(.output, i), at: t, "\(s.name) backward output")
            case .dropout:
                break
            }
        }
        alive(buffer(.output, n - 1), at: plan.endOfStep, "logits")
    }
}
