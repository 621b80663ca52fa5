// Package thinxml reads and writes the XML metadata format of
// thin-provisioning-tools (thin_dump / thin_restore), byte for byte as
// thin_dump 0.9.0 prints it.
//
// # Streaming
//
// A document is a stream of Emitter calls, as in thin-provisioning-tools'
// emitter.h:
//
//	BeginSuperblock (BeginDevice Map* EndDevice)* EndSuperblock
//
// Neither side holds the document in memory (Parse keeps only the shared
// mappings of <def> elements, below). A metadata walker calls a
// Writer directly: BeginSuperblock, then for each device in ascending
// dev_id order BeginDevice, Map once per mapped block in ascending origin
// order (Len 1; the Writer builds the runs), EndDevice; and EndSuperblock,
// which flushes. A restorer implements Emitter and hands itself to Parse.
// Neither allocates per mapping.
//
// # What the Writer prints (as thin_dump 0.9.0 does)
//
// No XML declaration; two spaces of indentation per level; attributes in
// thin_dump's order; uuid as given (thin_dump always gives ""); flags and
// version always; metadata_snap only when non-zero (thin_dump never prints
// it); a run of mappings continues while origin and data block both
// continue it and the time is equal, and is printed as <single_mapping>
// when it is one block long and <range_mapping> otherwise; an empty device
// prints its open and close tags on consecutive lines.
//
// # What Parse reads (what thin_restore 0.9.0 accepts)
//
// Everything thin_dump 0.9.0 writes and the XML variations thin_restore
// 0.9.0 (expat) accepts: attributes in any order, either quote, any white
// space between tokens, an XML declaration at the start, a UTF-8 byte order
// mark, comments and processing instructions anywhere between elements,
// the five predefined entities and character references in attribute
// values, self-closing elements and mappings written as start/end pairs.
// Attributes the format does not have are ignored, as in 0.9.0. flags
// defaults to 0, version to 1, metadata_snap to 0. mapped_blocks is passed
// on; thin_restore ignores it and so should a restorer.
//
// Parse is stricter than thin_restore 0.9.0 where 0.9.0 would silently
// write nonsense or where only malformed files differ:
//   - numbers must be plain unsigned decimals (0.9.0's lexical_cast wraps
//     "-1" around) and must fit the on-disk field: time, creation_time and
//     snap_time are 32-bit on disk although 0.9.0 parses them as 64-bit;
//   - a range_mapping must have length ≥ 1 and must not run past block
//     2^64-1;
//   - text and CDATA between elements (expat ignores it) and DOCTYPE are
//     refused, as is a tag longer than 1 MiB.
//
// Mappings are passed on in document order, not sorted, joined or checked
// against each other or against nr_data_blocks: thin_restore accepts any
// order, and those checks belong to the restorer.
//
// # <def> and <ref>
//
// thin_dump of thin-provisioning-tools 1.x writes subtrees shared between
// devices once, as <def name="..."> inside the superblock holding
// mappings, and refers to them with <ref name="..."/> inside devices.
// Parse keeps each definition's runs (at most maxSharedRuns in all) and
// replays them into the Emitter at each reference, so an Emitter sees the
// same stream as from a 0.9.0 document; the Writer writes 0.9.0 documents
// only. A <def> may hold only mappings and must come before its first
// <ref>; a name may be defined once.
//
// # Errors
//
// Parse returns a *ParseError with the line, column (in bytes) and byte
// offset of the problem and what it is, for example
//
//	thinxml: line 5, column 5: <range_mapping> is missing attribute length
//
// An Emitter's error or a read error is wrapped in a ParseError positioned
// where parsing had got to. EndSuperblock is called only after the whole
// input was read and found valid, so a restorer may commit there. The
// Writer's errors wrap ErrSequence or ErrInvalidValue, or the io.Writer's
// error, and are sticky.
package thinxml
