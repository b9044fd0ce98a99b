package v1alpha1

// CountNodes sets the status's counts of nodes per state (Queued,
// Running, Succeeded, ...) from its Nodes.
func (s *EdgeDeploymentStatus) CountNodes() {
	s.Queued, s.Running, s.Succeeded, s.Failed, s.TimedOut, s.Stopped = 0, 0, 0, 0, 0, 0
	for _, n := range s.Nodes {
		switch n.State {
		case EdgeNodeQueued:
			s.Queued++
		case EdgeNodeDeploying:
			s.Running++
		case EdgeNodeSucceeded:
			s.Succeeded++
		case EdgeNodeFailed:
			s.Failed++
		case EdgeNodeTimedOut:
			s.TimedOut++
		case EdgeNodeStopped:
			s.Stopped++
		}
	}
}
