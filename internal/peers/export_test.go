package peers

// What the tests in package peers_test need of the internals. They are in
// that package because they start peers with package peerstest, which
// imports this one.

// Procs returns the processes of s in the order Stop stops them.
func (s *Server) Procs() []*Process { return s.procs }

// Name returns the base name of p's program.
func (p *Process) Name() string { return p.name }

// GroupMember is a process of a group, found in /proc.
type GroupMember = groupMember

// PID returns m's process ID.
func (m groupMember) PID() int { return m.pid }

var (
	GroupMembers  = groupMembers
	ReadStat      = readStat
	ApacheAccount = apacheAccount
)

const PollInterval = pollInterval
