// Package discovery advertises this node over mDNS as _edged._tcp and keeps
// browsing for the other nodes of its site. What it finds are sightings: join
// candidates for the membership layer, never members by themselves. Browsing
// never stops: the browse session is renewed on a period so a peer seen once
// is seen again, and a peer that changed address is seen at the new one.
package discovery
