package sms

// WindowSize is s's window now (for the external tests).
func WindowSize(s *Sender) int {
	size, _, _ := s.window.state()
	return size
}
