import Vocabulary

/// What a network is built for: training keeps what backward reads;
/// inference keeps only what the next layer's forward reads.
public enum NetworkPurpose: String, Codable, CaseIterable, Sendable {
    case training, inference

    /// Training for every mode with a backward pass, inference for `forward`.
    public init(_ mode: Mode) { self = mode.hasBackward ? .training : .inference }
}

/// The memory of a network, computed from its spec, batch, purpose and
/// convolution choices before anything is allocated: per layer and in total,
/// the bytes of parameters, gradients, optimizer state (SGD momentum),
/// activations, convolution workspace and masks, and the layout of the one
/// activation arena that `Network` allocates.
///
/// The arena holds every layer's output and, in training, the gradient of
/// every layer's output (what the next layer's backward writes as its input
/// gradient). Each buffer lives from the step it is written to the last step
/// that reads it, on a timeline of forward (layer i at time i), the loss
/// (time L) and backward (layer i at time 2L − i). Two buffers whose
/// lifetimes overlap never share memory; otherwise a buffer may be placed over
/// one that is dead by then. Placement is greedy: largest buffer first, at the
/// lowest offset free of every overlapping buffer already placed.
///
/// What backward reads, and so how long an output lives in training:
/// - a convolution or linear layer reads its input (the weight gradient);
/// - a convolution reads its own output for ReLU's backward, except one that
///   feeds a max-pool: the pool applies that ReLU's backward from its own
///   output and argmax, so the convolution's output dies after the pool's
///   forward;
/// - a linear layer with ReLU reads its output; a max-pool reads its output
///   and its argmax (masks); dropout reads its mask;
/// - the logits live to the end of the step (the loss, predictions);
/// - the first convolution's input gradient is never formed.
public struct MemoryPlan: Equatable, Sendable {
    /// One buffer of the activation arena.
    public struct Buffer: Equatable, Sendable {
        public enum Role: String, Equatable, Sendable {
            /// The layer's output.
            case output
            /// The gradient of the layer's output (the next layer's input gradient, or the loss's for the last).
            case outputGradient
        }
        public var layer: Int
        public var role: Role
        /// Floats, rounded up to 16 (64 bytes).
        public var floats: Int
        /// First and last step of the timeline that touch it (inclusive).
        public var first: Int
        public var last: Int
        /// Floats from the arena's start.
        public var offset: Int

        func overlapsInTime(_ o: Buffer) -> Bool { first <= o.last && o.first <= last }
    }

    /// Bytes by kind, for one layer or the whole network.
    public struct Bytes: Equatable, Sendable {
        public var parameters = 0
        public var gradients = 0
        public var optimizerState = 0
        /// A layer: its output and output-gradient buffers (before reuse).
        /// The total: the arena after reuse, plus the images and labels.
        public var activations = 0
        /// A layer: the workspace it asks for. The total: the one shared workspace.
        public var workspace = 0
        /// Max-pool argmax bytes (training) and dropout masks.
        public var masks = 0
        public init() {}
        public var sum: Int { parameters + gradients + optimizerState + activations + workspace + masks }
    }

    public let spec: NetworkSpec
    public let batch: Int
    public let purpose: NetworkPurpose
    /// Whether the optimizer keeps momentum (a third arena like the parameters).
    public let optimizerState: Bool
    public let buffers: [Buffer]
    /// Floats of the activation arena.
    public let arenaFloats: Int
    /// Bytes of the images and labels of one batch.
    public let inputBytes: Int
    /// Bytes of the shared convolution workspace (`ConvWorkspace`).
    public let workspaceBytes: Int
    /// Per layer, in forward order.
    public let layers: [Bytes]

    /// The step after the last backward (logits live to here).
    public var endOfStep: Int { 2 * spec.layers.count + 1 }

    public init(spec: NetworkSpec, batch: Int, purpose: NetworkPurpose, optimizerState: Bool = false,
                convAlgorithm: ConvAlgorithm = .im2col, workspaceBudget: Int = Network.defaultWorkspaceFloats) {
        self.spec = spec
        self.batch = batch
        self.purpose = purpose
        self.optimizerState = optimizerState && purpose == .training
        let specs = spec.layers
        let n = specs.count
        let training = purpose == .training
        let end = 2 * n + 1

        func feedsPool(_ i: Int) -> Bool {
            if case .conv = specs[i], i + 1 < n, case .maxPool = specs[i + 1] { return true }
            return false
        }
        func readsInputInBackward(_ s: LayerSpec) -> Bool {
            switch s { case .conv, .linear: return true; default: return false }
        }
        func readsOutputInBackward(_ i: Int) -> Bool {
            switch specs[i] {
            case .conv: return !feedsPool(i)
            case let .linear(_, _, _, relu): return relu
            case .maxPool: return true
            case .dropout: return false
            }
        }
        func rounded(_ floats: Int) -> Int { (floats + 15) / 16 * 16 }

        var list: [Buffer] = []
        for (i, s) in specs.enumerated() {
            var last = i == n - 1 ? end : i + 1
            if training {
                if i + 1 < n && readsInputInBackward(specs[i + 1]) { last = max(last, 2 * n - (i + 1)) }
                if readsOutputInBackward(i) { last = max(last, 2 * n - i) }
            }
            list.append(Buffer(layer: i, role: .output, floats: rounded(batch * s.outputElementsPerImage),
                               first: i, last: last, offset: 0))
        }
        for (i, s) in specs.enumerated() where training || i == n - 1 {
            // Written by the backward of layer i + 1 (the loss for the last), read by layer i's.
            let first = i == n - 1 ? n : 2 * n - (i + 1)
            list.append(Buffer(layer: i, role: .outputGradient, floats: rounded(batch * s.outputElementsPerImage),
                               first: first, last: training ? 2 * n - i : first, offset: 0))
        }

        // Largest first (then earliest), each at the lowest offset that no
        // buffer alive at the same time occupies.
        let order = list.indices.sorted { a, b in
            (list[a].floats, -list[a].first, -a) > (list[b].floats, -list[b].first, -b)
        }
        var placed: [Int] = []
        var top = 0
        for b in order {
            let taken = placed.filter { list[$0].overlapsInTime(list[b]) }
                .map { (list[$0].offset, list[$0].offset + list[$0].floats) }
                .sorted { $0.0 < $1.0 }
            var offset = 0
            for (lo, hi) in taken {
                if offset + list[b].floats <= lo { break }
                offset = max(offset, hi)
            }
            list[b].offset = offset
            top = max(top, offset + list[b].floats)
            placed.append(b)
        }
        buffers = list
        arenaFloats = max(top, 16)
        inputBytes = batch * (spec.imageSize * spec.imageSize * 3 * 4 + 4)
        workspaceBytes = ConvWorkspace.bytes(specs: specs, batch: batch, budget: max(1, workspaceBudget),
                                             algorithm: convAlgorithm)

        layers = specs.enumerated().map { i, s in
            var b = Bytes()
            b.parameters = s.parameterCount * 4
            b.gradients = training ? b.parameters : 0
            b.optimizerState = optimizerState && training ? b.parameters : 0
            b.activations = list.filter { $0.layer == i }.reduce(0) { $0 + $1.floats * 4 }
            let need = ConvWorkspace.requirement(spec: s, batch: batch, budget: max(1, workspaceBudget),
                                                 algorithm: convAlgorithm)
            b.workspace = (need.floats + need.filterFloats) * 4
            switch s {
            case .maxPool: b.masks = training ? MaxPool2D.maskBytes(spec: s, batch: batch) : 0
            case let .dropout(_, f): b.masks = batch * f * 4
            default: break
            }
            return b
        }
    }

    /// The totals: parameters, gradients, optimizer state and masks summed
    /// over the layers; activations = the arena (after reuse) + images and
    /// labels; workspace = the shared workspace.
    public var total: Bytes {
        var t = Bytes()
        for l in layers {
            t.parameters += l.parameters
            t.gradients += l.gradients
            t.optimizerState += l.optimizerState
            t.masks += l.masks
        }
        t.activations = arenaFloats * 4 + inputBytes
        t.workspace = workspaceBytes
        return t
    }

    /// Bytes of every layer's buffers if none were reused.
    public var activationBytesWithoutReuse: Int { layers.reduce(0) { $0 + $1.activations } }

    /// Where a layer's buffer starts in the arena (floats), if it has one.
    public func offset(of role: Buffer.Role, layer: Int) -> Int? {
        buffers.first { $0.layer == layer && $0.role == role }?.offset
    }

    /// The largest batch in 1...`limit` whose plan totals at most `bytes`, or
    /// nil when not even one sample fits. The other inputs as for `init`.
    public static func largestBatch(fitting bytes: Int, spec: NetworkSpec, purpose: NetworkPurpose,
                                    optimizerState: Bool, convAlgorithm: ConvAlgorithm,
                                    workspaceBudget: Int = Network.defaultWorkspaceFloats,
                                    limit: Int = 1 << 16) -> Int? {
        func fits(_ b: Int) -> Bool {
            MemoryPlan(spec: spec, batch: b, purpose: purpose, optimizerState: optimizerState,
                       convAlgorithm: convAlgorithm, workspaceBudget: workspaceBudget).total.sum <= bytes
        }
        guard fits(1) else { return nil }
        var lo = 1, hi = limit
        if fits(hi) { return hi }
        while hi - lo > 1 {  // fits(lo), !fits(hi)
            let mid = (lo + hi) / 2
            if fits(mid) { lo = mid } else { hi = mid }
        }
        return lo
    }
}
