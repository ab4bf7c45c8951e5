package tunehook

// Known reports whether t is one of the four callback types of the seed.
func (t CallbackType) Known() bool { return t.rank() > 0 }

// Final reports whether t ends a task: complete or error. Nothing follows
// a final stage; a callback that arrives after it is stale.
func (t CallbackType) Final() bool { return t.rank() == finalRank }

// finalRank is the rank of complete and error: a task ends in one of them.
const finalRank = 3

// rank orders the stages: text < first < complete, and error is final like
// complete. A callback whose rank is not above the task's furthest
// processed stage is stale. Unknown types rank 0.
func (t CallbackType) rank() int {
	switch t {
	case CallbackText:
		return 1
	case CallbackFirst:
		return 2
	case CallbackComplete, CallbackError:
		return finalRank
	}
	return 0
}
