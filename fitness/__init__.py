"""fitness: distribution-matching and depth/precision fitness functions over extracted facts."""
