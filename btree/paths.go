package btree

import "sync/atomic"

// path names one way insert or remove restructures the tree. Each run of
// one is counted, so that the model test can show it reached them all: a
// tree of two leaves, what small random tests settle at, never meets the
// three-sibling paths. An atomic add is noise beside the node reads and
// writes each restructuring does.
type path int

const (
	pathSplitBeneath      path = iota // the root splits into two children
	pathSplitOneIntoTwo               // a full node gains a right sibling
	pathSplitTwoIntoThree             // a full node and a full sibling become three
	pathRebalanceLeft                 // a full node pours into its left sibling
	pathRebalanceRight                // a full node pours into its right sibling
	pathPullUpRoot                    // [A] a root of one child takes its child's entries
	pathRebalance2                    // remove rebalances a child with its one sibling
	pathMerge2                        // ... and merges the two
	pathRedistribute2                 // ... and evens the two out
	pathRebalance3                    // remove rebalances a child with both siblings
	pathDeleteCenterNode              // ... and empties the centre into the others
	pathRedistribute3                 // ... and spreads entries over the three
	nPaths
)

var pathNames = [nPaths]string{
	"splitBeneath", "splitOneIntoTwo", "splitTwoIntoThree", "rebalanceLeft", "rebalanceRight",
	"pullUpRoot", "rebalance2", "merge2", "redistribute2", "rebalance3", "deleteCenterNode", "redistribute3",
}

var pathRuns [nPaths]atomic.Uint64

func ran(p path) { pathRuns[p].Add(1) }
