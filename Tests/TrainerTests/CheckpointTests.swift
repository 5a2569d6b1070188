import Foundation
import TestSupport
@testable import Trainer
import VGGEngine
import Vocabulary
import XCTest

/// The checkpoint file, written and read in process.
final class CheckpointTests: XCTestCase {
    func arenas(_ n: Int, seed: Float) -> (FloatArena, FloatArena) {
        let p = FloatArena(count: n), m = FloatArena(count: n)
        for i in 0..<n { p[i] = seed + Float(i) / 7; m[i] = -seed * Float(i % 13) }
        return (p, m)
    }

    func header(_ p: FloatArena) -> CheckpointHeader {
        var config = TrainConfig()
        config.batchPerRank = 2
        return Checkpoint.header(config: config, ranks: 3, nextStep: 11, parameters: p)
    }

    func testRoundTripIsBitwise() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(1000, seed: 0.5)
        try Checkpoint.write(to: folder.path, header: header(p), sections: [p, m])
        let (q, n) = arenas(1000, seed: 9)
        let read = try Checkpoint.read(from: folder.path, sections: [q, n])
        XCTAssertEqual(read, header(p))
        XCTAssertEqual(read.nextStep, 11)
        XCTAssertEqual(read.globalBatch, 6)
        XCTAssertEqual((0..<1000).map { q[$0] }, (0..<1000).map { p[$0] })
        XCTAssertEqual((0..<1000).map { n[$0] }, (0..<1000).map { m[$0] })
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: folder.path), [Checkpoint.fileName],
                       "no temporary file is left beside it")
    }

    func testCorruptedTruncatedAndForeignFilesAreRefused() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(100, seed: 1)
        let path = folder.appendingPathComponent(Checkpoint.fileName).path
        let good = try Checkpoint.encode(header: header(p), sections: [p, m])
        func refused(_ data: Data, _ expected: String, line: UInt = #line) {
            _ = FileManager.default.createFile(atPath: path, contents: data)
            XCTAssertThrowsError(try Checkpoint.read(from: folder.path, sections: [p, m]), line: line) { error in
                XCTAssertTrue("\(error)".contains(expected), "\(error)", line: line)
            }
        }
        var flipped = good
        flipped[flipped.count / 2] ^= 1
        refused(flipped, "truncated or corrupted")
        refused(good.prefix(good.count - 100), "truncated or corrupted")
        refused(Data("not a checkpoint at all".utf8), "is not a vgg-dp checkpoint")
        let (small, smallM) = arenas(50, seed: 1)
        _ = FileManager.default.createFile(atPath: path, contents: good)
        XCTAssertThrowsError(try Checkpoint.read(from: folder.path, sections: [small, smallM])) { error in
            XCTAssertTrue("\(error)".contains("holds 100 parameters, this model has 50"), "\(error)")
        }
    }

    /// The file written piece by piece is the serialiser's bytes, and the
    /// stream hash does not depend on where the pieces break.
    func testStreamedFileIsTheEncodingAndTheHashIgnoresPieceBoundaries() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(Checkpoint.pieceBytes / 4 + 777, seed: 2)
        try Checkpoint.write(to: folder.path, header: header(p), sections: [p, m])
        let written = try Data(contentsOf: folder.appendingPathComponent(Checkpoint.fileName))
        XCTAssertEqual(written, try Checkpoint.encode(header: header(p), sections: [p, m]))
        let bytes = Array(written.prefix(10_001))
        var whole = StreamHash()
        bytes.withUnsafeBytes { whole.add($0) }
        for cuts in [[1, 2, 3], [7, 8, 9], [8, 16, 5000], [9999]] {
            var pieces = StreamHash()
            var start = 0
            for end in cuts + [bytes.count] {
                bytes[start..<end].withUnsafeBytes { pieces.add($0) }
                start = end
            }
            XCTAssertEqual(pieces.value, whole.value, "cuts \(cuts)")
        }
        var empty = StreamHash(), other = StreamHash()
        [UInt8(1)].withUnsafeBytes { other.add($0) }
        XCTAssertNotEqual(empty.value, other.value)
        empty.add(UnsafeRawBufferPointer(start: nil, count: 0))
        XCTAssertNotEqual(empty.value, other.value)
    }

    /// Extra sections (an exchange's state) travel after momentum and are
    /// counted: a file with other sections is refused as corrupted.
    func testSectionsAreReadBackAndCounted() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(300, seed: 3)
        let extra = FloatArena(count: 41)
        for i in 0..<41 { extra[i] = Float(i) * 0.25 }
        try Checkpoint.write(to: folder.path, header: header(p), sections: [p, m, extra])
        let (q, n) = arenas(300, seed: 4)
        let back = FloatArena(count: 41)
        _ = try Checkpoint.read(from: folder.path, sections: [q, n, back])
        XCTAssertEqual((0..<41).map { back[$0] }, (0..<41).map { extra[$0] })
        XCTAssertThrowsError(try Checkpoint.read(from: folder.path, sections: [q, n])) { error in
            XCTAssertTrue("\(error)".contains("truncated or corrupted"), "\(error)")
        }
    }

    /// Relayed floats (other ranks' error-feedback memory) follow the
    /// sections, are hashed, and are read back from their offset; a header
    /// with another compression is refused before any size is compared.
    func testRelaysRoundTripAndCompressionMustMatch() throws {
        let folder = Launcher.temporaryFolder()
        defer { try? FileManager.default.removeItem(at: folder) }
        let (p, m) = arenas(200, seed: 2)
        let relayed = (0..<(Checkpoint.pieceBytes / 4 + 10)).map { Float($0 % 977) - 3 }  // more than one piece
        var config = TrainConfig()
        config.batchPerRank = 2
        config.compression = PowerSGDSettings(rank: 3, minSize: 100)
        let h = Checkpoint.header(config: config, ranks: 2, nextStep: 5, parameters: p)
        XCTAssertEqual(h.compression, "powersgd rank 3 min 100")
        let relay = Checkpoint.Relay(count: relayed.count) { buffer, offset, n in
            for i in 0..<n { buffer[i] = relayed[offset + i] }
        }
        try Checkpoint.write(to: folder.path, header: h, sections: [p, m], relays: [relay])
        let (q, n) = arenas(200, seed: 7)
        _ = try Checkpoint.read(from: folder.path, sections: [q, n], relayFloats: relayed.count) {
            try Checkpoint.check($0, against: config, ranks: 2)
        }
        XCTAssertEqual((0..<200).map { q[$0] }, (0..<200).map { p[$0] })
        var back: [Float] = []
        try Checkpoint.readFloats(from: folder.path, offset: 400, count: relayed.count) { buffer, k in
            back.append(contentsOf: UnsafeBufferPointer(start: buffer, count: k))
        }
        XCTAssertEqual(back, relayed)

        var plain = config
        plain.compression = nil
        XCTAssertThrowsError(try Checkpoint.read(from: folder.path, sections: [q, n]) {
            try Checkpoint.check($0, against: plain, ranks: 2)
        }) { error in
            XCTAssertTrue("\(error)".contains("compression powersgd rank 3 min 100 vs none"), "\(error)")
        }
        XCTAssertThrowsError(try Checkpoint.check(h, against: config, ranks: 3)) { error in
            XCTAssertTrue("\(error)".contains("ranks 2 vs 3"), "\(error)")
        }
    }
}
