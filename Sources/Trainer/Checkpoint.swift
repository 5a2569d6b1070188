import Foundation
import Reports
import VGGEngine
import Vocabulary

/// A training checkpoint: parameters, momentum, the next step, and the
/// settings that must match to resume. One file, `checkpoint.vggdp`, in the
/// checkpoint folder, written by rank 0 only:
///
///   "VGGDPCK1" | header length (UInt64 LE) | header JSON | floats (params, then
///   momentum, then any further sections) | FNV-style hash of everything
///   before it (UInt64 LE)
///
/// Written piece by piece, straight from the arenas, to a temporary file,
/// fsynced, then renamed over the old one, so a crash while writing leaves
/// the last good checkpoint in place. On resume
/// rank 0 reads and verifies it and broadcasts it: ranks need no shared
/// filesystem, and the file is read once instead of N times.
public struct CheckpointHeader: Codable, Equatable, Sendable {
    public var format = 1
    public var model: String
    public var imageSize: Int
    public var classes: Int
    public var widthDivisor: Int
    public var seed: UInt64
    public var globalBatch: Int
    public var optimizer: SGD
    public var datasetSize: Int?
    /// The first step the resumed run executes (warm-up steps count).
    public var nextStep: Int
    public var parameters: Int
    /// Ranks of the run that wrote it (information; another count may resume).
    public var ranks: Int
    public var parameterChecksum: String
    /// Gradient compression ("powersgd rank 4 min 65536"); nil: none. With
    /// compression the sections after momentum are the compressor's state
    /// (rank 0's error-feedback memory and the Q's), then the memory of
    /// ranks 1 ..< `ranks`, and the checkpoint resumes only on as many ranks.
    /// With host-shared across hosts ("…, host-shared across H hosts") each
    /// rank compresses its own slice: every rank's whole state (memory and
    /// Q's) follows rank 0's, in rank order.
    public var compression: String? = nil
}

public enum Checkpoint {
    public static let fileName = "checkpoint.vggdp"
    static let magic = Array("VGGDPCK1".utf8)
    /// Bytes before the header JSON: the magic and the header's length.
    static let prefixBytes = 16
    /// The floats travel between memory and the file in pieces of this many
    /// bytes, straight from and into the arenas: writing or reading a
    /// checkpoint allocates no copy of it.
    static let pieceBytes = 4 << 20

    /// `sharedHosts`: the hosts of a host-shared run (nil: a replica per rank).
    public static func header(config: TrainConfig, ranks: Int, nextStep: Int, parameters: FloatArena,
                              sharedHosts: Int? = nil) -> CheckpointHeader {
        let n = config.network
        return CheckpointHeader(model: n.model.rawValue, imageSize: n.imageSize, classes: n.classes,
                                widthDivisor: n.widthDivisor, seed: config.seed, globalBatch: config.batchPerRank * ranks,
                                optimizer: config.optimizer, datasetSize: config.datasetSize, nextStep: nextStep,
                                parameters: parameters.count, ranks: ranks,
                                parameterChecksum: Checksum.hex(Checksum.of(parameters)),
                                compression: config.compression.map { c in
                                    c.description + (sharedHosts.map { ", host-shared across \($0) hosts" } ?? "")
                                })
    }

    /// Floats that reach the file through a piece buffer instead of from an
    /// arena of this process: `fill(buffer, offset, n)` writes floats
    /// `offset ..< offset + n` of the section into `buffer` (another rank's
    /// error-feedback memory, received piece by piece).
    public struct Relay {
        public var count: Int
        public var fill: (UnsafeMutablePointer<Float>, Int, Int) throws -> Void
        public init(count: Int, fill: @escaping (UnsafeMutablePointer<Float>, Int, Int) throws -> Void) {
            self.count = count
            self.fill = fill
        }
    }

    /// The file's bytes, in order, handed to `sink` in pieces: the prefix
    /// and header, each arena of `sections` (parameters, momentum, ...), then
    /// the hash of everything before it. The one serialiser: `write` sends
    /// the pieces to the file, `encode` collects them (tests).
    static func serialise(header: CheckpointHeader, sections: [FloatArena], relays: [Relay] = [],
                          into sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try encoder.encode(header)
        var head = Data(magic)
        appendUInt64(&head, UInt64(json.count))
        head.append(json)
        var hash = StreamHash()
        try head.withUnsafeBytes { hash.add($0); try sink($0) }
        for arena in sections {
            let bytes = UnsafeRawBufferPointer(start: arena.base, count: arena.count * 4)
            var offset = 0
            while offset < bytes.count {
                let piece = UnsafeRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + pieceBytes)])
                hash.add(piece)
                try sink(piece)
                offset += piece.count
            }
        }
        if !relays.isEmpty {
            let pieceFloats = pieceBytes / 4
            let buffer = UnsafeMutablePointer<Float>.allocate(capacity: pieceFloats)
            defer { buffer.deallocate() }
            for relay in relays {
                var offset = 0
                while offset < relay.count {
                    let n = min(pieceFloats, relay.count - offset)
                    try relay.fill(buffer, offset, n)
                    let piece = UnsafeRawBufferPointer(start: buffer, count: n * 4)
                    hash.add(piece)
                    try sink(piece)
                    offset += n
                }
            }
        }
        try withUnsafeBytes(of: hash.value.littleEndian) { try sink($0) }
    }

    public static func encode(header: CheckpointHeader, sections: [FloatArena]) throws -> Data {
        var data = Data()
        try serialise(header: header, sections: sections) { data.append(contentsOf: $0) }
        return data
    }

    /// Writes the checkpoint atomically into `folder`, piece by piece.
    public static func write(to folder: String, header: CheckpointHeader, sections: [FloatArena],
                             relays: [Relay] = []) throws {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
        try writeAtomically(to: path) { fd in
            try serialise(header: header, sections: sections, relays: relays) { try writeAll(fd, $0) }
        }
    }

    /// Reads and verifies a checkpoint into the arenas of `sections`, piece
    /// by piece. Throws a message a user can act on for a missing,
    /// truncated, corrupted or foreign file. The arenas may hold part of the
    /// file when it throws; the caller stops the run then.
    /// `relayFloats` floats after the sections are verified, not kept (see
    /// `readFloats`); `check` sees the header before any size is compared.
    public static func read(from folder: String, sections: [FloatArena], relayFloats: Int = 0,
                            check: (CheckpointHeader) throws -> Void = { _ in }) throws -> CheckpointHeader {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            if errno == ENOENT { throw TrainerError.usage("--resume \(folder): no \(fileName) there") }
            throw TrainerError.usage("--resume \(folder): cannot read \(fileName): \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw TrainerError.usage("--resume \(folder): cannot read \(fileName): \(String(cString: strerror(errno)))")
        }
        let size = Int(info.st_size)
        let corrupted = TrainerError.usage("--resume \(folder): \(fileName) is truncated or corrupted (checksum mismatch)")
        var hash = StreamHash()
        var prefix = [UInt8](repeating: 0, count: prefixBytes)
        guard size >= prefixBytes + 8, try readAll(fd, &prefix, folder: folder), Array(prefix.prefix(magic.count)) == magic else {
            throw TrainerError.usage("--resume \(folder): \(fileName) is not a vgg-dp checkpoint")
        }
        prefix.withUnsafeBytes { hash.add($0) }
        let jsonLength = Int(truncatingIfNeeded: readUInt64(Data(prefix), at: magic.count))
        guard jsonLength >= 0, jsonLength <= size - prefixBytes - 8 else { throw corrupted }
        var json = [UInt8](repeating: 0, count: jsonLength)
        guard try readAll(fd, &json, folder: folder) else { throw corrupted }
        json.withUnsafeBytes { hash.add($0) }
        guard let header = try? JSONDecoder().decode(CheckpointHeader.self, from: Data(json)) else { throw corrupted }
        // Short of its own parameters and momentum, whatever the settings: a truncated file.
        guard header.parameters >= 0, size >= prefixBytes + jsonLength + 8 * header.parameters + 8 else { throw corrupted }
        try check(header)
        let floats = (size - prefixBytes - jsonLength - 8) / 4
        let expected = sections.reduce(0) { $0 + $1.count } + relayFloats
        guard header.parameters == sections.first?.count else {
            throw TrainerError.usage("--resume \(folder): checkpoint holds \(header.parameters) parameters, this model has \(sections.first?.count ?? 0)")
        }
        guard floats == expected, prefixBytes + jsonLength + 4 * floats + 8 == size else { throw corrupted }
        for arena in sections {
            let bytes = UnsafeMutableRawBufferPointer(start: arena.base, count: arena.count * 4)
            var offset = 0
            while offset < bytes.count {
                let piece = UnsafeMutableRawBufferPointer(rebasing: bytes[offset..<min(bytes.count, offset + pieceBytes)])
                guard try readAll(fd, piece, folder: folder) else { throw corrupted }
                hash.add(UnsafeRawBufferPointer(piece))
                offset += piece.count
            }
        }
        if relayFloats > 0 {
            let piece = UnsafeMutableRawBufferPointer.allocate(byteCount: pieceBytes, alignment: 16)
            defer { piece.deallocate() }
            var left = relayFloats * 4
            while left > 0 {
                let part = UnsafeMutableRawBufferPointer(rebasing: piece[0..<min(left, pieceBytes)])
                guard try readAll(fd, part, folder: folder) else { throw corrupted }
                hash.add(UnsafeRawBufferPointer(part))
                left -= part.count
            }
        }
        var stored = [UInt8](repeating: 0, count: 8)
        guard try readAll(fd, &stored, folder: folder), readUInt64(Data(stored), at: 0) == hash.value else { throw corrupted }
        return header
    }

    /// After `read` verified the file: floats `offset ..< offset + count` of
    /// its float part (the sections in order), handed to `take(buffer, n)`
    /// piece by piece (another rank's error-feedback memory, sent on).
    public static func readFloats(from folder: String, offset: Int, count: Int,
                                  take: (UnsafeMutablePointer<Float>, Int) throws -> Void) throws {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else { throw TrainerError.failed("--resume \(folder): cannot reopen \(fileName): \(String(cString: strerror(errno)))") }
        defer { close(fd) }
        var prefix = [UInt8](repeating: 0, count: prefixBytes)
        guard try readAll(fd, &prefix, folder: folder) else { throw TrainerError.failed("--resume \(folder): \(fileName) changed while resuming") }
        let jsonLength = Int(truncatingIfNeeded: readUInt64(Data(prefix), at: magic.count))
        guard lseek(fd, off_t(prefixBytes + jsonLength + 4 * offset), SEEK_SET) >= 0 else {
            throw TrainerError.failed("--resume \(folder): cannot seek in \(fileName): \(String(cString: strerror(errno)))")
        }
        let pieceFloats = pieceBytes / 4
        let buffer = UnsafeMutablePointer<Float>.allocate(capacity: pieceFloats)
        defer { buffer.deallocate() }
        var done = 0
        while done < count {
            let n = min(pieceFloats, count - done)
            guard try readAll(fd, UnsafeMutableRawBufferPointer(start: buffer, count: n * 4), folder: folder) else {
                throw TrainerError.failed("--resume \(folder): \(fileName) changed while resuming")
            }
            try take(buffer, n)
            done += n
        }
    }

    /// Fills `buffer` from `fd`; false when the file ends first.
    private static func readAll(_ fd: Int32, _ buffer: UnsafeMutableRawBufferPointer, folder: String) throws -> Bool {
        var offset = 0
        while offset < buffer.count {
            let n = Foundation.read(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if n < 0 && errno == EINTR { continue }
            if n < 0 {
                throw TrainerError.usage("--resume \(folder): cannot read \(fileName): \(String(cString: strerror(errno)))")
            }
            if n == 0 { return false }
            offset += n
        }
        return true
    }

    private static func readAll(_ fd: Int32, _ bytes: inout [UInt8], folder: String) throws -> Bool {
        try bytes.withUnsafeMutableBytes { try readAll(fd, $0, folder: folder) }
    }

    /// Refuses a checkpoint written with other settings.
    public static func check(_ h: CheckpointHeader, against config: TrainConfig, ranks: Int, sharedHosts: Int? = nil) throws {
        let mine = header(config: config, ranks: ranks, nextStep: 0, parameters: FloatArena(count: 0), sharedHosts: sharedHosts)
        var differences: [String] = []
        if h.model != mine.model { differences.append("model \(h.model) vs \(mine.model)") }
        if h.imageSize != mine.imageSize { differences.append("image size \(h.imageSize) vs \(mine.imageSize)") }
        if h.classes != mine.classes { differences.append("classes \(h.classes) vs \(mine.classes)") }
        if h.widthDivisor != mine.widthDivisor { differences.append("width divisor \(h.widthDivisor) vs \(mine.widthDivisor)") }
        if h.seed != mine.seed { differences.append("seed \(h.seed) vs \(mine.seed)") }
        if h.globalBatch != mine.globalBatch { differences.append("global batch \(h.globalBatch) vs \(mine.globalBatch)") }
        if h.optimizer != mine.optimizer { differences.append("optimizer settings") }
        if h.datasetSize != mine.datasetSize { differences.append("dataset size") }
        if h.compression != mine.compression {
            differences.append("compression \(h.compression ?? "none") vs \(mine.compression ?? "none")")
        } else if h.compression != nil && h.ranks != ranks {
            differences.append("ranks \(h.ranks) vs \(ranks) (with compression each rank's error-feedback memory is in the checkpoint)")
        }
        if !differences.isEmpty {
            throw TrainerError.usage("the checkpoint was written with other settings: " + differences.joined(separator: ", "))
        }
    }

    static func appendUInt64(_ data: inout Data, _ v: UInt64) {
        withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) }
    }

    static func readUInt64(_ data: Data, at offset: Int) -> UInt64 {
        var v: UInt64 = 0
        for i in 0..<8 { v |= UInt64(data[data.startIndex + offset + i]) << (8 * UInt64(i)) }
        return v
    }

}

/// The checkpoint's hash, fed in pieces of any length: an FNV-style fold
/// over the stream's 8-byte little-endian words, then its trailing bytes one
/// by one, then `CounterRandom.mix`. The same value whatever the pieces.
struct StreamHash {
    private var h: UInt64 = 0xCBF2_9CE4_8422_2325
    /// Bytes of an unfinished word, carried to the next piece.
    private var pending: [UInt8] = []

    mutating func add(_ raw: UnsafeRawBufferPointer) {
        var i = 0
        if !pending.isEmpty {
            while pending.count < 8 && i < raw.count { pending.append(raw[i]); i += 1 }
            guard pending.count == 8 else { return }
            let word = pending.withUnsafeBytes { $0.loadUnaligned(as: UInt64.self) }
            h = (h ^ word) &* 0x100_0000_01B3
            pending.removeAll(keepingCapacity: true)
        }
        while i + 8 <= raw.count {
            h = (h ^ raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)) &* 0x100_0000_01B3
            i += 8
        }
        while i < raw.count { pending.append(raw[i]); i += 1 }
    }

    var value: UInt64 {
        var v = h
        for byte in pending { v = (v ^ UInt64(byte)) &* 0x100_0000_01B3 }
        return CounterRandom.mix(v)
    }
}
