import Foundation
import Vocabulary

/// Scratch of one worker thread for the loops outside BLAS: pointer tables
/// for the 1-D transforms, the row-pass result of one tile and one channel
/// block (α·α·block floats, in L1 or L2), a sink for outputs that fall outside the
/// image, and partial bias-gradient sums.
struct TransformScratch {
    let sources: SourceTable
    let destinations: DestinationTable
    /// A second source table (ReLU's outputs beside the gradients).
    let others: SourceTable
    let rows: UnsafeMutablePointer<Float>
    let sink: UnsafeMutablePointer<Float>
    let sums: UnsafeMutablePointer<Float>
}

/// Everything the convolutions share, allocated once by the network:
///
/// - `buffer` (`floats`): im2col's column buffer, or a Winograd layer's two
///   tile buffers (transformed inputs and GEMM outputs of one chunk of tiles,
///   2·α²·T·max(C, K) floats). Its size is the largest any layer asks for,
///   each layer asking for at most the budget (`workspaceBudget` floats).
/// - `filter` (`filterFloats`): one Winograd layer's transformed filter,
///   α²·C·K floats (the weight gradient in the transform domain reuses it),
///   sized for the largest α²·C·K among the layers, each with the algorithm
///   it resolves to. Not bounded by the budget. With VGG's 512×512 layers:
///   16·512·512 floats (16 MiB) for F(2×2), 36·512·512 (36 MiB) for F(4×4),
///   64·512·512 (64 MiB) for F(6×6); `auto` at 224 pixels runs F(6×6) only
///   on layers of at most 128 channels, so it needs F(4×4)'s 36 MiB.
/// - per-thread `TransformScratch` (row passes of up to 8×8 points), one per core (or BLAS thread, if more),
///   and a vector of zeros that stands for the padding around the image.
public final class ConvWorkspace {
    /// Channels per pass of a transform (64 floats: each row of a tile block
    /// is 256 bytes; the whole block, 9 KiB for a 6×6 tile and 16 KiB for
    /// 8×8, stays in L1).
    static let block = 64

    let buffer: UnsafeMutablePointer<Float>
    public let floats: Int
    let filter: UnsafeMutablePointer<Float>
    public let filterFloats: Int
    let zeros: UnsafeMutablePointer<Float>
    /// `onesCount` ones: sgemv's vector for summing a chunk's tiles.
    let ones: UnsafeMutablePointer<Float>
    let onesCount: Int
    /// `block` ones: the ReLU outputs a gradient tile is masked with when the
    /// ReLU's backward was applied already (by the max-pool after the layer).
    let positives: UnsafeMutablePointer<Float>
    let slots: [TransformScratch]
    let maxChannels: Int
    private let scratchBase: UnsafeMutablePointer<Float>
    private let tableBase: UnsafeMutableRawPointer
    /// Bytes allocated here.
    public let bytes: Int

    /// Floats of `buffer` and `filter` one layer asks for.
    public static func requirement(spec: LayerSpec, batch: Int, budget: Int,
                                   algorithm: ConvAlgorithm) -> (floats: Int, filterFloats: Int) {
        guard case let .conv(_, c, k, h, w) = spec else { return (0, 0) }
        guard let m = algorithm.resolved(inChannels: c, height: h, width: w).tile else {
            return (Conv2D.workspaceFloats(spec: spec, batch: batch, budget: budget), 0)
        }
        let a2 = (m + 2) * (m + 2)
        let tiles = chunkTiles(m: m, inChannels: c, outChannels: k, height: h, width: w, batch: batch, floats: budget)
        return (2 * a2 * tiles * max(c, k), a2 * c * k)
    }

    /// Tiles per chunk of a Winograd layer with `floats` of buffer: the whole
    /// batch if it fits, else as many as fit (at least one), and at most
    /// `maxChunkTiles` unless the layer has fewer than 16 input channels.
    ///
    /// More tiles than the cap do not make the per-point GEMMs faster but
    /// push the chunk's working set out of L2. Layers with fewer than 16
    /// input channels (the RGB layer) are exempt: their tiles are so cheap
    /// that each chunk's fixed costs (three parallel regions, α² sgemm calls)
    /// dominate, so they take as many tiles as the budget allows. (The
    /// timings behind 256 are in docs/ARCHITECTURE.md.)
    static let maxChunkTiles = 256
    static func chunkTiles(m: Int, inChannels c: Int, outChannels k: Int, height h: Int, width w: Int,
                           batch: Int, floats: Int) -> Int {
        let a2 = (m + 2) * (m + 2)
        let total = batch * ((h + m - 1) / m) * ((w + m - 1) / m)
        let cap = c < 16 ? total : maxChunkTiles
        return min(total, cap, max(1, floats / (2 * a2 * max(c, k))))
    }

    /// What a workspace for these layers holds, in floats, before anything is
    /// allocated: the chunk buffer, the transformed filter, the widest channel
    /// count (the zeros) and the tiles of the largest chunk (the ones).
    struct Sizes: Equatable {
        var buffer = 1, filter = 1, channels = 1, tiles = 1

        init(specs: [LayerSpec], batch: Int, budget: Int, algorithm: ConvAlgorithm) {
            for s in specs {
                guard case let .conv(_, c, k, _, _) = s else { continue }
                let r = ConvWorkspace.requirement(spec: s, batch: batch, budget: budget, algorithm: algorithm)
                buffer = max(buffer, r.floats)
                filter = max(filter, r.filterFloats)
                channels = max(channels, c, k)
            }
            // Each layer sizes its chunks by the buffer it gets, which may exceed
            // its own budget-based need (another layer needed more): `ones` must
            // cover the largest chunk.
            for s in specs {
                guard case let .conv(_, c, k, h, w) = s,
                      let m = algorithm.resolved(inChannels: c, height: h, width: w).tile else { continue }
                tiles = max(tiles, ConvWorkspace.chunkTiles(m: m, inChannels: c, outChannels: k, height: h, width: w,
                                                            batch: batch, floats: buffer))
            }
        }
    }

    /// Scratch slots: one per core, or per BLAS thread if more.
    static var slotCount: Int { max(1, ProcessInfo.processInfo.activeProcessorCount, BLAS.threads) }
    static let tableBytes = 48 * MemoryLayout<UnsafeMutableRawPointer>.stride
    static var perSlotFloats: Int { 64 * block + block }

    /// Bytes a workspace for these layers allocates (what `init` allocates).
    public static func bytes(specs: [LayerSpec], batch: Int, budget: Int, algorithm: ConvAlgorithm) -> Int {
        let z = Sizes(specs: specs, batch: batch, budget: max(1, budget), algorithm: algorithm)
        return (z.buffer + z.filter + z.channels + z.tiles + block) * 4
            + slotCount * ((perSlotFloats + z.channels) * 4 + tableBytes)
    }

    /// A workspace for the given layers, each running `algorithm` (resolved
    /// per layer).
    public init(specs: [LayerSpec], batch: Int, budget: Int, algorithm: ConvAlgorithm) {
        let z = Sizes(specs: specs, batch: batch, budget: budget, algorithm: algorithm)
        let need = z.buffer, filterNeed = z.filter, channels = z.channels, tiles = z.tiles
        buffer = Self.allocate(need)
        floats = need
        filterFloats = filterNeed
        filter = Self.allocate(filterNeed)
        maxChannels = channels
        zeros = Self.allocate(channels)
        onesCount = tiles
        ones = Self.allocate(tiles)
        ones.update(repeating: 1, count: tiles)
        positives = Self.allocate(Self.block)
        positives.update(repeating: 1, count: Self.block)
        var bytes = (need + filterNeed + channels + tiles + Self.block) * 4

        let slotCount = Self.slotCount
        let rowsFloats = 64 * Self.block, perSlot = Self.perSlotFloats + channels
        scratchBase = Self.allocate(slotCount * perSlot)
        // Three tables of 16 pointers (at most α + m = 10 are used at once).
        let tableBytes = Self.tableBytes
        tableBase = UnsafeMutableRawPointer.allocate(byteCount: slotCount * tableBytes, alignment: 64)
        tableBase.initializeMemory(as: UInt8.self, repeating: 0, count: slotCount * tableBytes)
        bytes += slotCount * (perSlot * 4 + tableBytes)
        let floatBase = scratchBase, rawBase = tableBase
        slots = (0..<slotCount).map { i in
            let f = floatBase + i * perSlot
            let t = rawBase + i * tableBytes
            return TransformScratch(
                sources: t.bindMemory(to: UnsafePointer<Float>.self, capacity: 16),
                destinations: (t + 16 * MemoryLayout<UnsafeMutableRawPointer>.stride)
                    .bindMemory(to: UnsafeMutablePointer<Float>.self, capacity: 16),
                others: (t + 32 * MemoryLayout<UnsafeMutableRawPointer>.stride)
                    .bindMemory(to: UnsafePointer<Float>.self, capacity: 16),
                rows: f, sink: f + rowsFloats, sums: f + rowsFloats + Self.block)
        }
        self.bytes = bytes
    }

    deinit {
        Self.free(buffer)
        Self.free(filter)
        Self.free(zeros)
        Self.free(ones)
        Self.free(positives)
        Self.free(scratchBase)
        tableBase.deallocate()
    }

    /// Parallel parts for the convolution's loops and its single-threaded
    /// GEMMs, set by each layer call from the BLAS thread count (at most one
    /// per scratch slot).
    var parts = 1

    /// Reads the BLAS thread count into `parts`.
    @discardableResult
    func updateParts() -> Int {
        parts = max(1, min(BLAS.threads, slots.count))
        return parts
    }

    /// 64-byte aligned, zeroed (so that the pages are touched here, not in
    /// the first step).
    private static func allocate(_ count: Int) -> UnsafeMutablePointer<Float> {
        let raw = UnsafeMutableRawPointer.allocate(byteCount: max(count, 1) * 4, alignment: 64)
        let p = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        p.initialize(repeating: 0, count: max(count, 1))
        return p
    }

    private static func free(_ p: UnsafeMutablePointer<Float>) { UnsafeMutableRawPointer(p).deallocate() }
}
