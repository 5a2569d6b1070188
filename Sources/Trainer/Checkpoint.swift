import Foundation
import Reports
import VGGEngine
import Vocabulary

/// A training checkpoint: parameters, momentum, the next step, and the
/// settings that must match to resume. One file, `checkpoint.vggdp`, in the
/// checkpoint folder, written by rank 0 only:
///
///   "VGGDPCK1" | header length (UInt64 LE) | header JSON | floats (params, then
///   momentum) | FNV-style hash of everything before it (UInt64 LE)
///
/// Written to a temporary file, fsynced, then renamed over the old one, so a
/// crash while writing leaves the last good checkpoint in place. On resume
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
}

public enum Checkpoint {
    public static let fileName = "checkpoint.vggdp"
    static let magic = Array("VGGDPCK1".utf8)

    public static func header(config: TrainConfig, ranks: Int, nextStep: Int, parameters: FloatArena) -> CheckpointHeader {
        let n = config.network
        return CheckpointHeader(model: n.model.rawValue, imageSize: n.imageSize, classes: n.classes,
                                widthDivisor: n.widthDivisor, seed: config.seed, globalBatch: config.batchPerRank * ranks,
                                optimizer: config.optimizer, datasetSize: config.datasetSize, nextStep: nextStep,
                                parameters: parameters.count, ranks: ranks,
                                parameterChecksum: Checksum.hex(Checksum.of(parameters)))
    }

    public static func encode(header: CheckpointHeader, parameters: FloatArena, momentum: FloatArena) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let json = try encoder.encode(header)
        var data = Data(magic)
        appendUInt64(&data, UInt64(json.count))
        data.append(json)
        data.append(UnsafeBufferPointer(start: parameters.base, count: parameters.count))
        data.append(UnsafeBufferPointer(start: momentum.base, count: momentum.count))
        appendUInt64(&data, hash(data))
        return data
    }

    /// Writes the checkpoint atomically into `folder`.
    public static func write(to folder: String, header: CheckpointHeader, parameters: FloatArena, momentum: FloatArena) throws {
        let data = try encode(header: header, parameters: parameters, momentum: momentum)
        try writeAtomically(data, to: URL(fileURLWithPath: folder).appendingPathComponent(fileName).path)
    }

    /// Reads and verifies a checkpoint; fills the arenas. Throws a message a
    /// user can act on for a missing, truncated, corrupted or foreign file.
    public static func read(from folder: String, parameters: FloatArena, momentum: FloatArena) throws -> CheckpointHeader {
        let path = URL(fileURLWithPath: folder).appendingPathComponent(fileName).path
        guard let data = FileManager.default.contents(atPath: path) else {
            throw TrainerError.usage("--resume \(folder): no \(fileName) there")
        }
        guard data.count >= magic.count + 16, Array(data.prefix(magic.count)) == magic else {
            throw TrainerError.usage("--resume \(folder): \(fileName) is not a vgg-dp checkpoint")
        }
        let stored = readUInt64(data, at: data.count - 8)
        guard hash(data.prefix(data.count - 8)) == stored else {
            throw TrainerError.usage("--resume \(folder): \(fileName) is truncated or corrupted (checksum mismatch)")
        }
        let jsonLength = Int(readUInt64(data, at: magic.count))
        let jsonStart = magic.count + 8
        let header = try JSONDecoder().decode(CheckpointHeader.self, from: data.subdata(in: jsonStart..<(jsonStart + jsonLength)))
        let floats = (data.count - 8 - jsonStart - jsonLength) / 4
        guard header.parameters == parameters.count, floats == parameters.count + momentum.count else {
            throw TrainerError.usage("--resume \(folder): checkpoint holds \(header.parameters) parameters, this model has \(parameters.count)")
        }
        data.withUnsafeBytes { raw in
            let base = raw.baseAddress! + jsonStart + jsonLength
            memcpy(parameters.base, base, parameters.count * 4)
            memcpy(momentum.base, base + parameters.count * 4, momentum.count * 4)
        }
        return header
    }

    /// Refuses a checkpoint written with other settings.
    public static func check(_ h: CheckpointHeader, against config: TrainConfig, ranks: Int) throws {
        let mine = header(config: config, ranks: ranks, nextStep: 0, parameters: FloatArena(count: 0))
        var differences: [String] = []
        if h.model != mine.model { differences.append("model \(h.model) vs \(mine.model)") }
        if h.imageSize != mine.imageSize { differences.append("image size \(h.imageSize) vs \(mine.imageSize)") }
        if h.classes != mine.classes { differences.append("classes \(h.classes) vs \(mine.classes)") }
        if h.widthDivisor != mine.widthDivisor { differences.append("width divisor \(h.widthDivisor) vs \(mine.widthDivisor)") }
        if h.seed != mine.seed { differences.append("seed \(h.seed) vs \(mine.seed)") }
        if h.globalBatch != mine.globalBatch { differences.append("global batch \(h.globalBatch) vs \(mine.globalBatch)") }
        if h.optimizer != mine.optimizer { differences.append("optimizer settings") }
        if h.datasetSize != mine.datasetSize { differences.append("dataset size") }
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

    static func hash(_ data: Data) -> UInt64 {
        data.withUnsafeBytes { raw in
            var h: UInt64 = 0xCBF2_9CE4_8422_2325
            let words = raw.count / 8
            for i in 0..<words { h = (h ^ raw.loadUnaligned(fromByteOffset: i * 8, as: UInt64.self)) &* 0x100_0000_01B3 }
            for i in (words * 8)..<raw.count { h = (h ^ UInt64(raw[i])) &* 0x100_0000_01B3 }
            return CounterRandom.mix(h)
        }
    }
}
