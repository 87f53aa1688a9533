package bridge

// StopNow ends Run's drain at once, as a second SIGTERM asks: the requests
// still in flight are cut off and their scripts stopped (SIGTERM, then
// SIGKILL after the kill grace), the workers stopped, and Run returns.
// Called before Run shuts down, it makes the drain end as soon as it
// begins. It may be called from any goroutine, more than once.
func (s *Server) StopNow() {
	s.log.Warn().Msg("ferry: stopping now: in-flight requests are cut off")
	s.stopNow()
}
