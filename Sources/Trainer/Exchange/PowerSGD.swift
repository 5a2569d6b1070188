import Comm
import Reports
import VGGEngine
import Vocabulary

/// PowerSGD low-rank gradient compression with error feedback (Vogels,
/// Karimireddy and Jaggi, NeurIPS 2019; the algorithm of PyTorch's DDP
/// hook), one bucket at a time. Per compressed layer, M is its weight
/// gradient plus the error-feedback memory; the exchange of a bucket is
///
///   Q's columns made orthonormal, P = M·Q for each layer;  ONE allreduce of the bucket's P's together with
///   its uncompressed tensors (biases, small layers);  P's columns made
///   orthonormal;  Q = Mᵀ·P;  ONE allreduce of the bucket's Q's;
///   memory = M − P·Qᵀ/N;  gradient = P·Qᵀ.
///
/// The gradient arena then holds, on every rank, the same sum over ranks of
/// the decompressed gradient (Q is a sum), which the usual `BucketUpdate`
/// scales by 1/N, so replicas stay bitwise identical. Q is kept for the
/// next step (warm start); it starts from the same seeded random matrix on
/// every rank. Making the kept Q orthonormal before P = M·Q (the same bits on
/// every rank) keeps P's columns from all leaning towards M's first singular
/// vector, whose removal in the orthonormalisation would otherwise leave
/// mostly rounding, worst when P travels in 16 bits. The memory and the Q's live in one arena (`state`), the P's
/// and the uncompressed tensors travel through a second (`pack`); both are
/// allocated here, once. A one-rank group compresses too, with nothing to
/// sum: compression changes the arithmetic by design.
final class PowerSGD {
    /// One compressed layer: where its weight gradient, memory, Q and P are.
    struct Factor: Equatable {
        var layer: Int
        /// Offset of the weight gradient in the gradient arena.
        var weights: Int
        var rows: Int
        var cols: Int
        /// Offsets in `state`.
        var memory: Int
        var q: Int
        /// Offset in `pack`.
        var p: Int
    }

    /// A bucket's compressed layers, the tensors that travel whole, and its
    /// two messages: `pack[0 ..< packCount]` (P's, then whole tensors) and
    /// `state[qOffset ..< qOffset + qCount]` (Q's).
    struct BucketLayout: Equatable {
        var factors: [Factor] = []
        /// Slices of the gradient arena that travel uncompressed.
        var whole: [ArenaSlice] = []
        var pCount = 0
        var packCount = 0
        var qOffset = 0
        var qCount = 0
    }

    let settings: PowerSGDSettings
    let layouts: [BucketLayout]
    /// Error-feedback memory of every compressed layer, then every Q (in bucket order).
    let state: FloatArena
    let pack: FloatArena
    /// One layer's Qᵀ (rank×cols) while Q = Mᵀ·P is summed and while M̂
    /// is formed; its size (at least `tileFloats`) also sets how many rows
    /// of M one block of P = M·Q reads while they are in cache.
    let tile: FloatArena
    static let tileFloats = 1 << 16
    /// Floats of error-feedback memory: `state[0 ..< memoryCount]`; the Q's follow.
    let memoryCount: Int
    /// Floats one step sends, over all buckets (P's, whole tensors, Q's).
    let floatsPerStep: Int
    /// Compute seconds of the last step (everything but the allreduces).
    private(set) var computeSeconds = 0.0
    /// Per bucket, its compute seconds in the last step.
    private(set) var bucketSeconds: [Double] = []

    /// The matrix shape PowerSGD sees for a layer's weight gradient, if it has one.
    static func shape(_ layer: LayerSpec) -> (rows: Int, cols: Int)? {
        switch layer {
        case let .conv(_, c, k, _, _): return (9 * c, k)
        case let .linear(_, i, o, _): return (i, o)
        default: return nil
        }
    }

    /// The layouts of `buckets` (no memory allocated): what travels, and where it lives.
    /// A bucket may cover only part of a layer (host-shared: a rank's piece
    /// of a bucket): the whole rows of the layer's weight matrix inside it
    /// are compressed as one matrix, when large enough; the partial rows at
    /// its edges and the bias travel whole.
    static func layouts(layers: [LayerSpec], slices: [ArenaSlice], buckets: [Bucket],
                        settings: PowerSGDSettings) -> (layouts: [BucketLayout], memory: Int, state: Int, pack: Int) {
        var result: [BucketLayout] = []
        var memory = 0
        for b in buckets {
            var layout = BucketLayout()
            func whole(_ lo: Int, _ hi: Int) { if lo < hi { layout.whole.append(ArenaSlice(offset: lo, count: hi - lo)) } }
            for l in b.layers {
                let slice = slices[l], spec = layers[l]
                let lo = max(slice.offset, b.offset), hi = min(slice.end, b.end)
                guard lo < hi else { continue }
                guard let s = shape(spec) else { whole(lo, hi); continue }
                // Whole rows of the weights within [lo, hi).
                let w = slice.offset, wEnd = w + spec.weightCount
                let first = lo <= w ? 0 : (lo - w + s.cols - 1) / s.cols
                let last = min(hi, wEnd) <= w ? 0 : (min(hi, wEnd) - w) / s.cols
                let rows = max(0, last - first)
                if rows > 0 && settings.compresses(rows: rows, cols: s.cols) {
                    let m0 = w + first * s.cols, m1 = w + last * s.cols
                    whole(lo, m0)
                    layout.factors.append(Factor(layer: l, weights: m0, rows: rows, cols: s.cols, memory: memory, q: 0,
                                                 p: layout.pCount))
                    memory += rows * s.cols
                    layout.pCount += rows * settings.rank
                    layout.qCount += s.cols * settings.rank
                    whole(m1, hi)
                } else {
                    whole(lo, hi)
                }
            }
            layout.packCount = layout.pCount + layout.whole.reduce(0) { $0 + $1.count }
            result.append(layout)
        }
        var q = memory
        for i in result.indices {
            result[i].qOffset = q
            for f in result[i].factors.indices {
                result[i].factors[f].q = q
                q += result[i].factors[f].cols * settings.rank
            }
        }
        return (result, memory, q, result.map(\.packCount).max() ?? 0)
    }

    init(layers: [LayerSpec], slices: [ArenaSlice], buckets: [Bucket], settings: PowerSGDSettings, seed: UInt64) {
        self.settings = settings
        let plan = Self.layouts(layers: layers, slices: slices, buckets: buckets, settings: settings)
        layouts = plan.layouts
        state = FloatArena(count: plan.state)
        memoryCount = plan.memory
        pack = FloatArena(count: plan.pack)
        tile = FloatArena(count: max(Self.tileFloats, settings.rank * (plan.layouts.flatMap(\.factors).map(\.cols).max() ?? 0)))
        floatsPerStep = plan.layouts.reduce(0) { $0 + $1.packCount + $1.qCount }
        self.seed = seed
        bucketSeconds = Array(repeating: 0, count: buckets.count)
        reset()
    }

    let seed: UInt64

    /// The state of a fresh run: no memory, every Q the seeded random matrix.
    /// After a step whose summed gradient was not finite (skipped), the
    /// memory and the Q's hold NaN or Inf; every rank resets (the same verdict).
    func reset() {
        state.base.update(repeating: 0, count: memoryCount)
        for layout in layouts {
            for f in layout.factors {
                let key = CounterRandom.key(seed, RandomStream.powerSGD.rawValue, UInt64(f.layer))
                for i in 0..<(f.cols * settings.rank) { state[f.q + i] = CounterRandom.symmetric(key, i) }
            }
        }
    }

    /// Rows of a factor's M per block: one tile.
    func blockRows(_ f: Factor) -> Int { max(1, tile.count / f.cols) }

    /// The compressed layers' names, for the layout line.
    var compressedLayers: [Int] { layouts.flatMap { $0.factors.map(\.layer) } }

    func beginStep() {
        computeSeconds = 0
        for b in bucketSeconds.indices { bucketSeconds[b] = 0 }
    }

    /// Bucket `b`'s exchange, from the local gradients in `gradients` to the
    /// summed decompressed gradient (see the type's comment); returns the
    /// seconds spent in its two allreduces. `announce(id)` comes before each
    /// collective and `completed()` after it (the watchdog).
    func exchange(_ b: Bucket, gradients g: UnsafeMutablePointer<Float>, group: GradientGroup, wire: GradientWire,
                  step: Int, watchdog: Watchdog?) throws -> Double {
        let layout = layouts[b.index]
        let r = settings.rank
        let n = group.size
        let s = state.base, p = pack.base
        var communicate = 0.0
        func allreduce(_ base: UnsafeMutablePointer<Float>, _ count: Int) throws {
            guard n > 1, count > 0 else { return }
            let t0 = Clock.now()
            watchdog?.announce(step: step, id: b.index)
            defer { watchdog?.completed(); communicate += Clock.now() - t0 }
            try group.allreduceSum(base, count: count, wire: wire)
        }
        let t0 = Clock.now()
        for f in layout.factors {
            LowRank.orthonormalize(s + f.q, rows: f.cols, rank: r)
            LowRank.addAndProject(memory: s + f.memory, into: g + f.weights, rows: f.rows, cols: f.cols, q: s + f.q, rank: r,
                                  p: p + f.p, blockRows: blockRows(f))
        }
        var at = layout.pCount
        for w in layout.whole {
            (p + at).update(from: g + w.offset, count: w.count)
            at += w.count
        }
        try allreduce(p, layout.packCount)
        at = layout.pCount
        for w in layout.whole {
            (g + w.offset).update(from: p + at, count: w.count)
            at += w.count
        }
        for f in layout.factors {
            LowRank.orthonormalize(p + f.p, rows: f.rows, rank: r)
            LowRank.projectBack(m: g + f.weights, rows: f.rows, cols: f.cols, p: p + f.p, rank: r, into: s + f.q,
                                scratch: tile.base)
        }
        try allreduce(s + layout.qOffset, layout.qCount)
        for f in layout.factors {
            LowRank.decompress(p: p + f.p, q: s + f.q, rows: f.rows, cols: f.cols, rank: r, scale: 1 / Float(n),
                               m: g + f.weights, memory: s + f.memory, scratch: tile.base)
        }
        let compute = Clock.now() - t0 - communicate
        computeSeconds += compute
        bucketSeconds[b.index] = compute
        return communicate
    }
}
