package thinxml

import "github.com/thind-storage/thind/metastream"

// Shared mappings, as thin_dump of thin-provisioning-tools 1.x writes
// them: a subtree that several devices share is printed once, as
// <def name="..."> holding its mappings inside <superblock>, and each
// device that has it says <ref name="..."/> where its mappings would go.
// Parse keeps each definition's runs and replays them into the Emitter at
// every reference, so that an Emitter sees the same stream as from a
// 0.9.0 document.

// beginDef enters a <def> (or records an empty one).
func (p *parser) beginDef(lt int, empty bool) error {
	name := p.text
	if _, dup := p.defs[name]; dup {
		return p.errAt(lt, nil, "<def name=%q> is defined twice", name)
	}
	if p.defs == nil {
		p.defs = make(map[string][]metastream.Mapping)
	}
	p.defs[name] = nil
	if empty {
		return nil
	}
	p.openLine[inDef] = p.lineAt(lt)
	p.state, p.def = inDef, name
	return nil
}

// keep adds a run to the <def> being read.
func (p *parser) keep(lt int, m metastream.Mapping) error {
	if p.sharedRuns == maxSharedRuns {
		return p.errAt(lt, nil, "the <def> elements hold more than %d mapping runs", maxSharedRuns)
	}
	p.sharedRuns++
	p.defs[p.def] = append(p.defs[p.def], m)
	return nil
}

// replay passes the runs of the <def> a <ref> names to the Emitter, as the
// current device's.
func (p *parser) replay(lt int) error {
	runs, ok := p.defs[p.text]
	if !ok {
		return p.errAt(lt, nil, "<ref name=%q> comes before any <def> of that name", p.text)
	}
	for _, m := range runs {
		if err := p.em.Map(m); err != nil {
			return p.errAt(lt, err, "")
		}
	}
	return nil
}
