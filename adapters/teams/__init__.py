"""Teams front end (botbuilder): every botbuilder import stays inside this package."""
