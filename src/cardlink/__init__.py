"""CardLink GP OTA Tester."""
